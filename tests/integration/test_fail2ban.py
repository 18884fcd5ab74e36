"""fail2ban keeps working: its stock postfix filter (Debian's fail2ban 1.0,
/etc/fail2ban/filter.d/postfix.conf, mode=aggressive, which holds its
postscreen rules) run by fail2ban-regex over mxscreen's log finds exactly
the clients it would find in postscreen's: a pregreet bot, a client that
hung up in the greet wait, a DNSBL reject and a command count limit, and
not a client that passed.  mxscreen logs with syslog_name =
postfix/postscreen, as the README tells users of such tools to do."""
import shutil
import subprocess

import pytest

from mxs import Mxscreen, recv_line, recv_reply

TEASER = b"220-mxscreen.test ESMTP\r\n"




def fail2ban_ips(log_path, mode="aggressive"):
    """The addresses fail2ban-regex finds with the stock postfix filter."""
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex is missing (Debian package fail2ban)")
    r = subprocess.run(["fail2ban-regex", "-o", "ip", log_path, f"postfix[mode={mode}]"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [l.strip() for l in r.stdout.splitlines() if l.strip()]


def test_fail2ban_finds_the_rejected_clients(workdir, dns, backend):
    dns.list("127.0.60.3", "bl.test")
    dns.list("127.0.60.4", "bl.test")
    p = {
        "syslog_name": "postfix/postscreen",
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "1s",
        "postscreen_dnsbl_sites": "bl.test",
        "postscreen_dnsbl_action": "enforce",
        "postscreen_command_count_limit": "4",
        "mxscreen_dns_servers": dns.addr,
        "mxscreen_backend": backend.addr,
    }
    with Mxscreen(workdir, p) as mx:
        # A pregreet bot: talks before its turn.
        s = mx.connect(src="127.0.60.1")
        s.sendall(b"EHLO bot.example\r\n")
        mx.wait_for_log(r"PREGREET \d+ after \S+ from \[127\.0\.60\.1\]:\d+: EHLO bot")
        s.close()
        # A client that hangs up in the greet wait.
        s = mx.connect(src="127.0.60.2")
        assert recv_line(s) == TEASER
        s.close()
        mx.wait_for_log(r"HANGUP after \S+ from \[127\.0\.60\.2\]:\d+ in tests before SMTP")
        # A listed client, rejected at RCPT (enforce).
        s = mx.connect(src="127.0.60.3")
        assert recv_line(s) == TEASER
        assert recv_line(s, timeout=5).startswith(b"220 ")
        s.sendall(b"EHLO client.example\r\n")
        recv_reply(s)
        s.sendall(b"MAIL FROM:<a@example.org>\r\n")
        recv_reply(s)
        s.sendall(b"RCPT TO:<b@example.net>\r\n")
        assert recv_reply(s).startswith(b"550 5.7.1 Service unavailable; client [127.0.60.3]")
        s.sendall(b"QUIT\r\n")
        s.close()
        mx.wait_for_log(r"NOQUEUE: reject: RCPT from \[127\.0\.60\.3\]:\d+: 550 5\.7\.1")
        # A listed client that goes on past the command count limit.
        s = mx.connect(src="127.0.60.4")
        assert recv_line(s) == TEASER
        assert recv_line(s, timeout=5).startswith(b"220 ")
        for _ in range(5):
            s.sendall(b"NOOP\r\n")
        mx.wait_for_log(r"COMMAND COUNT LIMIT from \[127\.0\.60\.4\]:\d+ after NOOP")
        s.close()
        # A good client: passes, and must not be found.
        s = mx.connect(src="127.0.60.5")
        assert recv_line(s) == TEASER
        mx.wait_for_log(r"PASS NEW \[127\.0\.60\.5\]:\d+$", timeout=5)
        s.close()
    log = mx.log_text()
    assert "postfix/postscreen[" in log
    ips = fail2ban_ips(mx.log_path)
    assert sorted(set(ips)) == [f"127.0.60.{i}" for i in (1, 2, 3, 4)], (ips, log)
    # The postscreen rules proper (mode=ddos) find the pregreet, hang-up and
    # command-limit clients; the reject is the "normal" rules' part.
    assert sorted(set(fail2ban_ips(mx.log_path, "ddos"))) == \
        ["127.0.60.1", "127.0.60.2", "127.0.60.4"]
