#!/bin/sh
# Install every Debian 12 package that building, running and testing
# mxscreen needs, and create the unprivileged mxscreen user.  Run as root.
# Debian's own Postfix service is kept unconfigured ("No configuration"):
# the tests and the demo start private Postfix instances of their own, and
# port 25 stays free for mxscreen.
set -eu

PACKAGES="build-essential meson ninja-build pkg-config clang-format
  libevent-dev libc-ares-dev liblmdb-dev libhiredis-dev libssl-dev openssl libpcre2-dev
  zlib1g-dev libcmocka-dev python3 python3-pytest python3-dnslib postfix redis-server
  iproute2 fail2ban"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
    # fail2ban is here for fail2ban-regex and its stock filters (a test
    # checks that they read mxscreen's log); a service that starts banning
    # addresses on this machine is not wanted: stop the one just installed.
    case " $missing " in
    *" fail2ban "*)
        if [ -d /run/systemd/system ]; then
            systemctl disable --now fail2ban >/dev/null 2>&1 || true
        fi
        ;;
    esac
fi
if ! getent passwd mxscreen >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mxscreen
fi
