"""The client side of STARTTLS in tests: a context that trusts the test
certificate (made by the ``tlsdir`` fixture in conftest.py), and the
STARTTLS step itself.  Stdlib only."""
import ssl

READY = b"220 2.0.0 Ready to start TLS\r\n"


def client_context(minimum=None, maximum=None):
    """A client context for mxscreen's self-signed test certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def starttls(c, ctx=None):
    """STARTTLS, the 220, and the handshake; c.sock is the TLS socket after."""
    assert c.cmd("STARTTLS") == READY
    c.sock = (ctx or client_context()).wrap_socket(c.sock)
    return c.sock
