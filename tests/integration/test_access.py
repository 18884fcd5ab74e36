"""postscreen_access_list: allowlist, denylist and their log words."""
import os
import socket

from mxs import Mxscreen, SilentBackend, assert_held, recv_all


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def held_backend():
    """A backend that holds clients in hand-off, so nothing reaches a real MTA."""
    return SilentBackend()


def test_denylisted_client_dropped_with_521(workdir):
    acl = write(os.path.join(workdir, "acl.cidr"),
                "# the bad ones\n127.0.0.50 reject\n127.0.0.0/8 permit\n")
    sb = held_backend()
    try:
        with Mxscreen(workdir, {"postscreen_access_list": f"permit_mynetworks, cidr:{acl}",
                                "mynetworks": "10.0.0.0/8",
                                "postscreen_denylist_action": "drop",
                                "mxscreen_backend": sb.addr}) as mx:
            c = mx.connect(src="127.0.0.50")
            assert recv_all(c) == b"521 5.3.2 Service currently unavailable\r\n"
            mx.wait_for_log(r"DISCONNECT \[127\.0\.0\.50\]:\d+")
            lines = mx.log_lines()
            i = next(i for i, l in enumerate(lines) if l.startswith("CONNECT from [127.0.0.50]"))
            assert lines[i + 1].startswith("DENYLISTED [127.0.0.50]:")
            assert lines[i + 2].startswith("DISCONNECT [127.0.0.50]:")
            # The next rule of the table allowlists another address.
            c2 = mx.connect(src="127.0.0.51")
            mx.wait_for_log(r"ALLOWLISTED \[127\.0\.0\.51\]:\d+")
            c2.close()
    finally:
        sb.close()


def test_denylist_ignore_continues_to_handoff(workdir):
    sb = held_backend()
    try:
        with Mxscreen(workdir, {"postscreen_access_list": "inline:{127.0.0.52=reject}",
                                "postscreen_denylist_action": "ignore",
                                "mxscreen_backend": sb.addr}) as mx:
            c = mx.connect(src="127.0.0.52")
            mx.wait_for_log(r"DENYLISTED \[127\.0\.0\.52\]:\d+")
            # Handed off: the silent backend holds it, so no reply and no DISCONNECT.
            assert_held(c)
            assert "DISCONNECT" not in mx.log_text()
            c.close()
    finally:
        sb.close()


def test_legacy_words_with_respectful_logging_no(workdir):
    acl = write(os.path.join(workdir, "acl.cidr"), "127.0.0.53 reject\n127.0.0.54 permit\n")
    sb = held_backend()
    try:
        with Mxscreen(workdir, {"postscreen_access_list": f"cidr:{acl}",
                                "postscreen_blacklist_action": "drop",  # legacy name
                                "compatibility_level": "2",
                                "mxscreen_backend": sb.addr}) as mx:
            c = mx.connect(src="127.0.0.53")
            assert recv_all(c) == b"521 5.3.2 Service currently unavailable\r\n"
            mx.wait_for_log(r"BLACKLISTED \[127\.0\.0\.53\]:\d+")
            mx.wait_for_log(r"using backwards-compatible default setting respectful_logging=no "
                            r"for client \[127\.0\.0\.53\]:\d+")
            c2 = mx.connect(src="127.0.0.54")
            mx.wait_for_log(r"WHITELISTED \[127\.0\.0\.54\]:\d+")
            c2.close()
            # The notice is logged once per process.
            assert mx.log_text().count("using backwards-compatible") == 1
    finally:
        sb.close()


def test_ipv6_client_matched_by_cidr(workdir):
    acl = write(os.path.join(workdir, "acl.cidr"), "[::1]/128 reject\n")
    sb = held_backend()
    try:
        mx = Mxscreen(workdir, {"postscreen_access_list": f"cidr:{acl}",
                                "postscreen_denylist_action": "drop",
                                "mxscreen_backend": sb.addr})
        mx.params["mxscreen_listen"] = f"[::1]:{mx.port}"
        with open(mx.cf_path, "a") as f:
            f.write(f"mxscreen_listen = [::1]:{mx.port}\n")
        with mx:
            c = socket.create_connection(("::1", mx.port), timeout=10)
            assert recv_all(c) == b"521 5.3.2 Service currently unavailable\r\n"
            mx.wait_for_log(r"CONNECT from \[::1\]:\d+ to \[::1\]:\d+")
            mx.wait_for_log(r"DENYLISTED \[::1\]:\d+")
    finally:
        sb.close()
