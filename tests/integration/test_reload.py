"""Reload on SIGHUP (issue 8): new connections get the new configuration,
sessions in progress finish under theirs, a broken configuration is refused
with its error while the old one keeps running, parameters a running
process cannot change are named, and no connection is refused or reset by
reloads under load.  SIGTERM drains."""
import os
import re
import signal
import socket
import threading
import time

from conftest import report_line
from fakebackend import FakeBackend
from mxs import Mxscreen, recv_line


def write_cf(mx, **changes):
    """Rewrite MX's configuration file with CHANGES (None removes a line)."""
    p = dict(mx.params)
    for k, v in changes.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    with open(mx.cf_path + ".new", "w") as f:
        for k, v in p.items():
            f.write(f"{k} = {v}\n")
    os.replace(mx.cf_path + ".new", mx.cf_path)  # never a half-written file
    return p


def reload(mx, n):
    """SIGHUP, then wait for the Nth reload's outcome line."""
    os.kill(mx.proc.pid, signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        done = len(re.findall(r"configuration reloaded|reload failed", mx.log_text()))
        if done >= n:
            return
        time.sleep(0.02)
    raise TimeoutError(mx.log_text())


def params(backend, **kw):
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "one",
        "postscreen_greet_wait": "2s",
        "mxscreen_backend": backend.addr,
    }
    p.update(kw)
    return p


def teaser(s):
    return recv_line(s)


def test_new_connections_get_the_new_configuration_old_ones_keep_theirs(workdir):
    with FakeBackend() as fb:
        with Mxscreen(workdir, params(fb)) as mx:
            a = mx.connect(src="127.0.9.1")
            t_a = time.time()
            assert teaser(a) == b"220-one\r\n"
            write_cf(mx, postscreen_greet_banner="two", postscreen_greet_wait="1s")
            reload(mx, 1)
            assert re.search(r"reloading the configuration from \S+", mx.log_text())
            b = mx.connect(src="127.0.9.2")
            t_b = time.time()
            assert teaser(b) == b"220-two\r\n"
            # B waits the new 1 s; A its old 2 s, although B came later.
            assert recv_line(b).startswith(b"220 fake.test")
            waited_b = time.time() - t_b
            assert recv_line(a).startswith(b"220 fake.test")
            waited_a = time.time() - t_a
            assert 0.8 < waited_b < 1.8, waited_b
            assert waited_a > 1.9, waited_a
            a.close()
            b.close()
            mx.wait_for_log(r"PASS NEW \[127\.0\.9\.1\]")
            mx.wait_for_log(r"PASS NEW \[127\.0\.9\.2\]")


def test_a_broken_configuration_is_refused_and_the_running_one_stays(workdir):
    with FakeBackend() as fb:
        with Mxscreen(workdir, params(fb)) as mx:
            write_cf(mx, postscreen_greet_banner="two", postscreen_greet_wait="forever")
            reload(mx, 1)
            line = [l for l in mx.log_lines() if "reload failed" in l]
            assert len(line) == 1, mx.log_text()
            assert re.match(rf"warning: reload failed: {re.escape(mx.cf_path)}, line \d+: "
                            r"parameter postscreen_greet_wait: .* -- the running "
                            r"configuration stays$", line[0]), line[0]
            s = mx.connect(src="127.0.9.3")
            assert teaser(s) == b"220-one\r\n"  # still the old one
            s.close()
            # A table that cannot be read is refused the same way.
            write_cf(mx, postscreen_access_list=f"cidr:{workdir}/missing.cidr")
            reload(mx, 2)
            assert re.search(r"reload failed: .*parameter postscreen_access_list: .*missing\.cidr",
                             mx.log_text()), mx.log_text()
            # Fixed: taken.
            write_cf(mx, postscreen_greet_banner="three")
            reload(mx, 3)
            s = mx.connect(src="127.0.9.4")
            assert teaser(s) == b"220-three\r\n"
            s.close()
            assert mx.alive()


def test_parameters_of_the_start_are_named_and_kept(workdir):
    with FakeBackend() as fb:
        with Mxscreen(workdir, params(fb)) as mx:
            write_cf(mx, mxscreen_listen="127.0.0.1:1", postscreen_greet_banner="two",
                     postscreen_cache_map=f"lmdb:{workdir}/other.lmdb")
            reload(mx, 1)
            for name in ("mxscreen_listen", "postscreen_cache_map"):
                assert re.search(rf"warning: {re.escape(mx.cf_path)}, line \d+: parameter "
                                 rf"{name} changed: it takes effect when mxscreen restarts",
                                 mx.log_text()), name
            # The rest is taken; the port is the old one.
            s = mx.connect(src="127.0.9.5")
            assert teaser(s) == b"220-two\r\n"
            s.close()
            assert not os.path.exists(f"{workdir}/other.lmdb")


def test_no_connection_is_lost_during_reloads_under_load(workdir, request):
    """Allowlisted clients connect back to back from 8 threads while the
    configuration is reloaded every 100 ms (the banner changes each time),
    and 20 new clients wait out the greet wait across the reloads: every
    connection is served, none refused or reset."""
    table = os.path.join(workdir, "allow.cidr")
    with open(table, "w") as f:
        f.write("127.0.10.0/24 permit\n")
    with FakeBackend() as fb:
        p = params(fb, postscreen_access_list=f"permit_mynetworks, cidr:{table}",
                   postscreen_greet_wait="1s")
        with Mxscreen(workdir, p) as mx:
            held = [mx.connect(src=f"127.0.11.{i}") for i in range(1, 21)]
            for s in held:
                assert teaser(s) == b"220-one\r\n"
            stop = time.time() + 3.0
            counts = {"ok": 0, "lost": []}
            lock = threading.Lock()

            def client(n):
                i = 0
                while time.time() < stop:
                    i += 1
                    src = f"127.0.10.{n * 30 + i % 30 + 1}"
                    try:
                        s = mx.connect(src=src, timeout=5)
                        line = recv_line(s, timeout=5)
                        s.close()
                        ok = line.startswith(b"220 fake.test")
                    except OSError as e:
                        ok, line = False, repr(e)
                    with lock:
                        if ok:
                            counts["ok"] += 1
                        else:
                            counts["lost"].append((src, line))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            reloads = 0
            while time.time() < stop:
                reloads += 1
                write_cf(mx, postscreen_access_list=f"permit_mynetworks, cidr:{table}",
                         postscreen_greet_wait="1s", postscreen_greet_banner=f"b{reloads}")
                reload(mx, reloads)
                time.sleep(0.1)
            for t in threads:
                t.join(10)
            # The held clients, teased before every reload, all pass.
            for s in held:
                assert recv_line(s).startswith(b"220 fake.test")
                s.close()
            report_line(request.config,
                        f"reloads under load: {counts['ok']} connections served, "
                        f"{len(counts['lost'])} lost, {reloads} reloads")
            assert counts["lost"] == []
            assert counts["ok"] > 100 and reloads >= 10
            assert mx.log_text().count("configuration reloaded") == reloads
            for i in range(1, 21):
                mx.wait_for_log(rf"PASS NEW \[127\.0\.11\.{i}\]")


def test_sigterm_drains_sessions_in_progress(workdir):
    with FakeBackend() as fb:
        with Mxscreen(workdir, params(fb, postscreen_greet_wait="1s")) as mx:
            s = mx.connect(src="127.0.9.6")
            assert teaser(s) == b"220-one\r\n"
            mx.proc.send_signal(signal.SIGTERM)
            mx.wait_for_log(r"stopping on signal 15: 1 sessions in progress")
            # No new connections...
            time.sleep(0.2)
            try:
                c = socket.create_connection(("127.0.0.1", mx.port), timeout=2)
                c.close()
                refused = False
            except OSError:
                refused = True
            assert refused
            # ...but the session in progress finishes, then the process exits 0.
            assert recv_line(s).startswith(b"220 fake.test")
            s.close()
            mx.wait_for_log(r"PASS NEW \[127\.0\.9\.6\]")
            assert mx.proc.wait(10) == 0
