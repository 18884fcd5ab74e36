"""The demo behind scripts/demo.sh: a private Postfix, mxscreen in front of
it with the shipped configuration, and one message screened and delivered."""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from postfix_backend import PostfixBackend  # noqa: E402

CONFIG = os.path.join(ROOT, "etc", "mxscreen.cf")
BIN = os.environ.get("MXSCREEN_BIN", os.path.join(ROOT, "build", "mxscreen"))


def say(text):
    print(f"\n=== {text}", flush=True)


def main():
    once = "--once" in sys.argv[1:]
    base = tempfile.mkdtemp(prefix="mxscreen-demo-", dir="/tmp")
    os.chmod(base, 0o755)
    say(f"starting a private Postfix on 127.0.0.1:10025 (PROXY protocol), files in {base}")
    pf = PostfixBackend(base, hostname="backend.demo", proxy_port=10025)
    pf.start()
    say(f"starting mxscreen -c {CONFIG} (its log follows on stderr)")
    # One override: only 127.0.0.1 is "our network", so that the other
    # loopback addresses play clients from outside, which mxscreen screens.
    # The allowlist cache goes in the demo's own directory, so that every
    # run starts with clients that are new.
    mx = subprocess.Popen([BIN, "-c", CONFIG, "-o", "mynetworks=127.0.0.1/32",
                           "-o", f"data_directory={base}/data"], stdin=subprocess.DEVNULL)
    ok = False
    try:
        deadline = time.time() + 10
        while True:
            if mx.poll() is not None:
                raise SystemExit(f"mxscreen exited with status {mx.returncode}")
            try:
                smtplib.SMTP("127.0.0.1", 25, timeout=2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("mxscreen is not answering on port 25")
                time.sleep(0.1)
        say("a bot at 127.0.0.66 talks before the greeting is complete (the pregreet test)")
        bot = socket.create_connection(("127.0.0.1", 25), source_address=("127.0.0.66", 0),
                                       timeout=20)
        print("bot got:", bot.recv(200))
        bot.sendall(b"EHLO bot.example\r\n")
        time.sleep(0.5)
        bot.close()
        say("sending a message from 127.0.0.2 to postmaster@example.test through port 25; "
            "a new client waits postscreen_greet_wait (6 s) once, after the \"220-\" teaser, "
            "then talks to mxscreen's engine (the deep tests), and at its RCPT it is handed "
            "to Postfix in the same connection")
        t0 = time.time()
        s = smtplib.SMTP("127.0.0.1", 25, source_address=("127.0.0.2", 0), timeout=20)
        print(f"greeting after {time.time() - t0:.1f} s:",
              s.ehlo("client.demo")[1].decode().splitlines()[0])
        s.sendmail("someone@sender.demo", ["postmaster@example.test"],
                   "Subject: hello through mxscreen\r\n\r\nScreened by mxscreen, delivered by Postfix.\r\n")
        s.quit()
        msg = pf.wait_for_message("hello through mxscreen", timeout=20)
        say("the same client again: it passed, so it goes straight through (PASS OLD)")
        t0 = time.time()
        s = smtplib.SMTP("127.0.0.1", 25, source_address=("127.0.0.2", 0), timeout=20)
        print(f"greeting after {time.time() - t0:.1f} s:",
              s.ehlo("client.demo")[1].decode().splitlines()[0])
        s.quit()
        say("Postfix's log for that client (it sees the real address, not mxscreen's)")
        for line in pf.log_text().splitlines():
            if "127.0.0.2]" in line:
                print(line)
        say("the delivered message")
        print(msg)
        say("what mxscreen counted so far (http://127.0.0.1:9325/metrics; the dashboard "
            "is http://127.0.0.1:9325/)")
        with urllib.request.urlopen("http://127.0.0.1:9325/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(("mxscreen_connections_total", "mxscreen_verdicts_total",
                                    "mxscreen_test_failures_total{test=\"pregreet\"")) \
                        and not line.endswith(" 0"):
                    print(line)
        ok = True
        if not once:
            say("mxscreen is running on port 25 in front of that Postfix; "
                "try: telnet 127.0.0.1 25, and open http://127.0.0.1:9325/ for the "
                "dashboard.  Ctrl-C stops both.")
            signal.sigwait([signal.SIGINT, signal.SIGTERM])
    except KeyboardInterrupt:
        pass
    finally:
        if mx.poll() is None:
            mx.send_signal(signal.SIGTERM)
            try:
                mx.wait(40)
            except subprocess.TimeoutExpired:
                mx.kill()
        pf.stop()
        shutil.rmtree(base, ignore_errors=True)
    say("demo finished" if ok else "demo FAILED")
    return 0 if ok and mx.returncode == 0 else 1


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM]) if "--once" not in sys.argv else None
    sys.exit(main())
