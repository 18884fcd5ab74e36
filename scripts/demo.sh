#!/bin/sh
# Install what is needed, build mxscreen, and run it with its shipped
# configuration (etc/mxscreen.cf: port 25, PROXY hand-off to 127.0.0.1:10025)
# in front of a private Postfix that this script starts on 127.0.0.1:10025.
# A test message is sent through it; then mxscreen keeps running until
# Ctrl-C.  "--once" stops after the test message.  Run as root.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
exec /usr/bin/python3 scripts/demo.py "$@"
