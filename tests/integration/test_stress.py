"""STRESS mode and the screening queue limit (spec §1.10, §1.2 step 9).

Clients held in the SMTP engine count as being screened.  At 90 % of
postscreen_pre_queue_limit mxscreen enters STRESS mode (and stress-dependent
values such as the command time limit switch to their stress form); at the
limit new clients are turned away; at 70 % STRESS mode ends.
"""
import time

from mxs import Mxscreen, recv_all, recv_line

PARAMS = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_banner": "$myhostname ESMTP",
    "postscreen_pipelining_enable": "yes",
    "postscreen_pre_queue_limit": "10",
    "postscreen_command_time_limit": "${stress?{1}:{60}}s",
    "mxscreen_backend": "127.0.0.1:1",
}


def test_stress_mode_and_screening_ports_busy(workdir):
    with Mxscreen(workdir, PARAMS) as m:
        held = []
        for i in range(8):
            s = m.connect(src=f"127.0.1.{i + 1}")
            assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
            held.append(s)
        assert "STRESS" not in m.log_text()
        # The ninth session is 90 % of the limit of 10.
        s9 = m.connect(src="127.0.1.9")
        assert recv_line(s9) == b"220 mxscreen.test ESMTP\r\n"
        m.wait_for_log(r"entering STRESS mode with 9 connections$")
        # Under stress the command time limit is the stress value (1 s).
        t0 = time.time()
        assert recv_all(s9, timeout=10) == \
            b"421 4.4.2 mxscreen.test Error: timeout exceeded\r\n"
        assert time.time() - t0 < 5
        m.wait_for_log(r"COMMAND TIME LIMIT from \[127\.0\.1\.9\]:\d+ after CONNECT$")
        s9.close()
        # Nine again, then the tenth is one too many.
        s9 = m.connect(src="127.0.1.9")
        assert recv_line(s9) == b"220 mxscreen.test ESMTP\r\n"
        s10 = m.connect(src="127.0.1.10")
        s11 = m.connect(src="127.0.1.11")
        answers = {recv_all(s10, timeout=5), recv_all(s11, timeout=5)}
        assert b"421 4.3.2 All screening ports are busy\r\n" in answers
        m.wait_for_log(r"^.*: reject: connect from \[127\.0\.1\.1[01]\]:\d+: "
                       r"all screening ports busy$")
        for s in held + [s9, s10, s11]:
            s.close()
        m.wait_for_log(r"leaving STRESS mode with [0-7] connections$")


def test_no_stress_below_the_mark(workdir):
    with Mxscreen(workdir, PARAMS) as m:
        held = [m.connect(src=f"127.0.2.{i + 1}") for i in range(3)]
        for s in held:
            assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
        # The normal command time limit (60 s) applies: still connected.
        held[0].settimeout(1.5)
        try:
            data = held[0].recv(100)
        except OSError:
            data = None
        assert data is None
        for s in held:
            s.close()
        assert "STRESS" not in m.log_text()
