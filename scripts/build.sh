#!/bin/sh
# Build mxscreen with warnings as errors: build/ (plain) and, with
# "--asan", build-asan/ (AddressSanitizer and UndefinedBehaviorSanitizer).
set -eu
cd "$(dirname "$0")/.."
dir=build
opts="-Dwerror=true"
if [ "${1:-}" = "--asan" ]; then
    dir=build-asan
    opts="$opts -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug"
fi
if [ -d "$dir" ]; then
    # shellcheck disable=SC2086
    meson configure "$dir" $opts >/dev/null
else
    # shellcheck disable=SC2086
    meson setup "$dir" $opts >/dev/null
fi
ninja -C "$dir"
