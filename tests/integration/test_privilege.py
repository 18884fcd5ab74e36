"""Least privilege (issue 8): after it has opened what it needs, mxscreen
runs as mxscreen_user, can never gain privileges again (no_new_privs) and,
with mxscreen_chroot, sees nothing of the file system but an empty
directory, while it goes on screening, asking DNSBLs, remembering clients
and logging."""
import os
import pwd
import re
import signal
import subprocess

import pytest

from fakebackend import FakeBackend
from mxs import Mxscreen, recv_line

TEASER = b"220-mxscreen.test ESMTP\r\n"


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mxscreen must start as root")


@needs_root
def test_chroot_unprivileged_no_new_privs_and_service_goes_on(workdir, dns):
    jail = os.path.join(workdir, "jail")
    os.mkdir(jail, 0o755)
    # The jail holds nothing but /proc, for the sanitizers' leak check at
    # exit (LeakSanitizer reads /proc/self); mxscreen itself needs nothing.
    os.mkdir(os.path.join(jail, "proc"))
    r = subprocess.run(["mount", "-t", "proc", "proc", os.path.join(jail, "proc")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount /proc in the jail: {r.stderr.strip()}")
    try:
        run_jailed(workdir, dns, jail)
    finally:
        subprocess.run(["umount", "-l", os.path.join(jail, "proc")], capture_output=True)
    assert os.listdir(jail) == ["proc"]


def run_jailed(workdir, dns, jail):
    dns.list("127.0.15.2", "bl.test")
    with FakeBackend() as fb:
        p = {
            "mynetworks": "127.0.0.1/32",
            "smtpd_banner": "$myhostname ESMTP",
            "postscreen_greet_banner": "$smtpd_banner",
            "postscreen_greet_wait": "1s",
            "postscreen_dnsbl_sites": "bl.test",
            "postscreen_dnsbl_threshold": "1",
            "postscreen_dnsbl_action": "drop",
            "mxscreen_dns_servers": dns.addr,
            "mxscreen_backend": fb.addr,
            "mxscreen_chroot": jail,
        }
        with Mxscreen(workdir, p) as mx:
            pid = mx.proc.pid
            assert os.readlink(f"/proc/{pid}/root") == jail
            st = status(pid)
            nobody = pwd.getpwnam("nobody")
            assert st["Uid"].split() == [str(nobody.pw_uid)] * 4
            assert st["Gid"].split() == [str(nobody.pw_gid)] * 4
            assert st["NoNewPrivs"] == "1"
            assert st["CapEff"] == "0000000000000000"
            # Screening, the DNSBL, the allowlist and the log all work.
            s = mx.connect(src="127.0.15.1")
            assert recv_line(s) == TEASER
            assert recv_line(s).startswith(b"220 fake.test")
            s.close()
            mx.wait_for_log(r"PASS NEW \[127\.0\.15\.1\]")
            s = mx.connect(src="127.0.15.1")
            assert recv_line(s).startswith(b"220 fake.test")  # known: no teaser
            s.close()
            mx.wait_for_log(r"PASS OLD \[127\.0\.15\.1\]")
            s = mx.connect(src="127.0.15.2")
            assert recv_line(s) == TEASER
            assert b"blocked using bl.test" in recv_line(s)
            s.close()
            mx.wait_for_log(r"DNSBL rank 1 for \[127\.0\.15\.2\]")
            # The configuration is out of reach: a reload says so, and
            # the running configuration stays.
            os.kill(pid, signal.SIGHUP)
            mx.wait_for_log(r"warning: reload: not available with mxscreen_chroot")
            s = mx.connect(src="127.0.15.3")
            assert recv_line(s) == TEASER
            s.close()


def test_no_new_privs_without_chroot(workdir):
    with Mxscreen(workdir, {"mxscreen_user": "nobody"}) as mx:
        assert status(mx.proc.pid)["NoNewPrivs"] == "1"
        assert os.readlink(f"/proc/{mx.proc.pid}/root") == "/"


@needs_root
def test_chroot_to_a_missing_directory_stops_with_the_parameter(workdir):
    mx = Mxscreen(workdir, {"mxscreen_chroot": f"{workdir}/nowhere"})
    with pytest.raises(RuntimeError) as e:
        mx.start()
    assert re.search(rf"fatal: {re.escape(mx.cf_path)}, line \d+: parameter mxscreen_chroot: "
                     r"cannot chroot to \S+/nowhere: No such file or directory", str(e.value)), \
        str(e.value)
    mx.stop(expect_rc=1)
