"""Hand-off to a real Postfix in each mode, and hand-off failures."""
import os
import smtplib
import socket
import time
import uuid

import pytest

from mxs import Mxscreen, SilentBackend, free_port, recv_all, recv_line


def backend_for(pf, mode):
    return {"proxy": f"127.0.0.1:{pf.proxy_port}",
            "proxy-v1": f"127.0.0.1:{pf.proxy_port}",
            "xclient": f"127.0.0.1:{pf.xclient_port}",
            "pass": pf.pass_socket}[mode]


@pytest.mark.parametrize("mode", ["proxy", "proxy-v1", "xclient", "pass"])
def test_allowlisted_client_delivers_through_real_postfix(postfix, workdir, mode):
    params = {
        "mxscreen_handoff": mode.split("-")[0],
        "mxscreen_backend": backend_for(postfix, mode),
        "mynetworks": "127.0.0.0/8",
        # postscreen runs as the postfix user, which may enter private/.
        "mxscreen_user": "postfix" if mode == "pass" else "nobody",
    }
    if mode == "proxy-v1":
        params["mxscreen_proxy_protocol"] = "v1"
    src = {"proxy": "127.0.0.21", "proxy-v1": "127.0.0.22", "xclient": "127.0.0.23",
           "pass": "127.0.0.24"}[mode]
    tag = uuid.uuid4().hex
    with Mxscreen(workdir, params) as mx:
        s = smtplib.SMTP("127.0.0.1", mx.port, source_address=(src, 0), timeout=15)
        code, banner = s.ehlo("client.example")
        assert code == 250
        s.sendmail("sender@remote.example", ["someone@example.test"],
                   f"Subject: {tag}\r\n\r\nhello via {mode}\r\n")
        s.quit()
        msg = postfix.wait_for_message(tag)
        assert f"hello via {mode}" in msg
        # Postfix saw the real client, not mxscreen's 127.0.0.1.
        postfix.wait_for_log(rf"client=unknown\[{src}\]")
        assert f"[{src}]" in msg  # the Received: header
        lines = mx.log_lines()
        assert any(l.startswith(f"CONNECT from [{src}]:") and f"to [127.0.0.1]:{mx.port}" in l
                   for l in lines), lines
        assert any(l.startswith(f"ALLOWLISTED [{src}]:") for l in lines), lines
        # Hand-off is not a disconnect.
        assert not any(l.startswith("DISCONNECT") for l in lines), lines


def test_mxscreen_runs_as_the_unprivileged_user(workdir):
    import pwd
    with Mxscreen(workdir, {"mxscreen_user": "nobody"}) as mx:
        with open(f"/proc/{mx.proc.pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        nobody = pwd.getpwnam("nobody").pw_uid
        assert all(int(u) == nobody for u in uids), uids


@pytest.mark.parametrize("mode", ["proxy", "xclient", "pass"])
def test_backend_down_gives_421_and_service_goes_on(workdir, mode):
    dead = f"127.0.0.1:{free_port()}" if mode != "pass" else os.path.join(workdir, "nosocket")
    with Mxscreen(workdir, {"mxscreen_handoff": mode, "mxscreen_backend": dead,
                            "mynetworks": "127.0.0.0/8"}) as mx:
        for i in range(3):
            c = mx.connect(src=f"127.0.0.{30 + i}")
            t0 = time.time()
            assert recv_all(c) == b"421 4.3.2 All server ports are busy\r\n"
            assert time.time() - t0 < 5
            c.close()
        mx.wait_for_log(r"warning: cannot connect to service .*: (Connection refused|No such file)")
        assert mx.alive()


def test_backend_that_never_greets_times_out_with_421(workdir):
    silent = SilentBackend()
    try:
        with Mxscreen(workdir, {"mxscreen_backend": silent.addr, "mxscreen_backend_timeout": "1s",
                                "mynetworks": "127.0.0.0/8"}) as mx:
            c = mx.connect(src="127.0.0.35")
            t0 = time.time()
            assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
            assert 0.8 < time.time() - t0 < 5
            mx.wait_for_log(r"warning: backend .* timeout during the hand-off of \[127\.0\.0\.35\]")
    finally:
        silent.close()


def test_backend_closing_before_greeting_gives_421(workdir):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    import threading

    def closer():
        for _ in range(1):
            c, _ = srv.accept()
            c.recv(200)  # the PROXY header
            c.close()
    t = threading.Thread(target=closer, daemon=True)
    t.start()
    try:
        with Mxscreen(workdir, {"mxscreen_backend": f"127.0.0.1:{port}",
                                "mynetworks": "127.0.0.0/8"}) as mx:
            c = mx.connect(src="127.0.0.36")
            assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
            mx.wait_for_log(r"warning: backend 127\.0\.0\.1:\d+ closed the connection before its greeting")
    finally:
        srv.close()


def test_xclient_refused_by_backend_gives_421(postfix, workdir):
    # The plain port does not authorize XCLIENT for mxscreen.
    with Mxscreen(workdir, {"mxscreen_handoff": "xclient",
                            "mxscreen_backend": f"127.0.0.1:{postfix.plain_port}",
                            "mynetworks": "127.0.0.0/8"}) as mx:
        c = mx.connect(src="127.0.0.37")
        assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
        mx.wait_for_log(r"does not offer XCLIENT to mxscreen")


def test_client_disconnecting_mid_relay_costs_nothing_else(postfix, workdir):
    with Mxscreen(workdir, {"mxscreen_backend": f"127.0.0.1:{postfix.proxy_port}",
                            "mynetworks": "127.0.0.0/8"}) as mx:
        rude = mx.connect(src="127.0.0.38")
        assert recv_line(rude).startswith(b"220 ")
        rude.sendall(b"EHLO rude\r\n")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rude.close()  # RST
        tag = uuid.uuid4().hex
        s = smtplib.SMTP("127.0.0.1", mx.port, source_address=("127.0.0.39", 0), timeout=15)
        s.sendmail("a@remote.example", ["b@example.test"], f"Subject: {tag}\r\n\r\nx\r\n")
        s.quit()
        postfix.wait_for_message(tag)
        assert mx.alive()


def test_sigterm_lets_relayed_session_finish_then_exits_0(postfix, workdir):
    mx = Mxscreen(workdir, {"mxscreen_backend": f"127.0.0.1:{postfix.proxy_port}",
                            "mynetworks": "127.0.0.0/8"}).start()
    s = smtplib.SMTP("127.0.0.1", mx.port, source_address=("127.0.0.40", 0), timeout=15)
    s.ehlo("drain.example")
    import signal
    mx.proc.send_signal(signal.SIGTERM)
    mx.wait_for_log(r"stopping on signal 15: 1 sessions in progress")
    # New clients are no longer accepted...
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mx.port), timeout=2)
    # ...but the session in progress still delivers.
    tag = uuid.uuid4().hex
    s.sendmail("a@remote.example", ["c@example.test"], f"Subject: {tag}\r\n\r\nx\r\n")
    s.quit()
    postfix.wait_for_message(tag)
    rc = mx.proc.wait(10)
    assert rc == 0
    mx.proc = None
    mx.err.close()
    assert "stopped" in mx.log_text()


def test_shutdown_time_limit_bounds_the_drain(postfix, workdir):
    mx = Mxscreen(workdir, {"mxscreen_backend": f"127.0.0.1:{postfix.proxy_port}",
                            "mynetworks": "127.0.0.0/8", "mxscreen_shutdown_timeout": "1s"}).start()
    c = mx.connect(src="127.0.0.41")
    assert recv_line(c).startswith(b"220 ")
    import signal
    t0 = time.time()
    mx.proc.send_signal(signal.SIGTERM)
    rc = mx.proc.wait(10)
    assert rc == 0 and time.time() - t0 < 5
    mx.proc = None
    mx.err.close()
    assert "shutdown time limit reached with 1 sessions left" in mx.log_text()
    c.close()
