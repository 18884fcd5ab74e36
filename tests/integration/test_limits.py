"""Per-client connection limit and the hand-off queue limit."""
import time

from mxs import Mxscreen, SilentBackend, assert_held, recv_all


def test_per_client_connection_limit(workdir):
    sb = SilentBackend()  # holds clients in hand-off
    try:
        with Mxscreen(workdir, {"postscreen_client_connection_count_limit": "2",
                                "mxscreen_backend": sb.addr}) as mx:
            held = [mx.connect(src="127.0.0.60") for _ in range(2)]
            mx.wait_for_log(r"(?s)CONNECT from \[127\.0\.0\.60\].*CONNECT from \[127\.0\.0\.60\]")
            third = mx.connect(src="127.0.0.60")
            assert recv_all(third) == b"421 4.7.0 Error: too many connections\r\n"
            mx.wait_for_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.60\]:\d+: too many "
                            r"connections")
            mx.wait_for_log(r"DISCONNECT \[127\.0\.0\.60\]")
            # Another address is not affected.
            other = mx.connect(src="127.0.0.61")
            assert_held(other)
            # A slot freed is a slot available again.
            held[0].close()
            time.sleep(0.3)
            again = mx.connect(src="127.0.0.60")
            assert_held(again)
            for c in held[1:] + [other, again]:
                c.close()
    finally:
        sb.close()


def test_zero_means_no_per_client_limit(workdir):
    sb = SilentBackend()
    try:
        with Mxscreen(workdir, {"postscreen_client_connection_count_limit": "0",
                                "postscreen_post_queue_limit": "100",
                                "mxscreen_backend": sb.addr}) as mx:
            conns = [mx.connect(src="127.0.0.62") for _ in range(60)]
            time.sleep(0.5)
            assert "too many connections" not in mx.log_text()
            for c in conns:
                c.close()
    finally:
        sb.close()


def test_post_queue_limit(workdir):
    sb = SilentBackend()
    try:
        with Mxscreen(workdir, {"postscreen_post_queue_limit": "5",
                                "mxscreen_backend": sb.addr}) as mx:
            held = []
            for i in range(5):
                held.append(mx.connect(src=f"127.0.0.{70 + i}"))
                mx.wait_for_log(rf"CONNECT from \[127\.0\.0\.{70 + i}\]")
            sixth = mx.connect(src="127.0.0.75")
            assert recv_all(sixth) == b"421 4.3.2 All server ports are busy\r\n"
            mx.wait_for_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.75\]:\d+: all server "
                            r"ports busy")
            for c in held:
                c.close()
    finally:
        sb.close()
