#!/bin/sh
# Install every Debian 12 package that building, running and testing
# mxscreen needs, and create the unprivileged mxscreen user.  Run as root.
# Debian's own Postfix service is kept unconfigured ("No configuration"):
# the tests and the demo start private Postfix instances of their own, and
# port 25 stays free for mxscreen.
set -eu

# clang and libclang-rt-dev: the libFuzzer targets (scripts/fuzz.sh); the
# fuzzer and sanitizer runtimes are only a recommendation of clang's.
PACKAGES="build-essential meson ninja-build pkg-config clang-format clang libclang-rt-dev
  libevent-dev libc-ares-dev liblmdb-dev libhiredis-dev libssl-dev openssl libpcre2-dev
  zlib1g-dev libcmocka-dev python3 python3-pytest python3-dnslib postfix redis-server
  iproute2 fail2ban prometheus chromium"

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
    # Services these packages bring are not wanted running here (fail2ban
    # banning addresses, a Prometheus server on port 9090): the tests use
    # fail2ban-regex, promtool, redis-server and postfix as commands or
    # private instances.  No service starts during the install...
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
    [ -n "$policy" ] && rm -f "$policy"
    # ...nor at the next boot, for those that are only tools to us.
    for svc in fail2ban prometheus; do
        case " $missing " in
        *" $svc "*)
            if [ -d /run/systemd/system ]; then
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
            fi
            ;;
        esac
    done
fi
if ! getent passwd mxscreen >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mxscreen
fi
