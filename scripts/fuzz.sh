#!/bin/bash
# Build the libFuzzer targets of tests/fuzz/ and run them, one at a time:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    e.g. scripts/fuzz.sh 300 proxy conf
#
# The targets are built with clang, ASan and UBSan in build-fuzz/
# (meson -Dfuzz=true).  Each TARGET (default: all) runs for SECONDS
# (default 60) from a copy of its seeds, tests/fuzz/corpus/TARGET/ (the
# copy lives in a temporary directory: a run never adds files to the
# repository), with tests/fuzz/TARGET.dict (or the dictionary of its
# prefix, smtp.dict for smtp_*) when there is one; then once over every
# input in tests/fuzz/regressions/TARGET/.  What a target
# finds (crash-*, leak-*, timeout-*, oom-*) is kept in
# build-fuzz/artifacts/TARGET/; put it in tests/fuzz/regressions/TARGET/
# once fixed.
#
# Prints one line per target,
#   fuzz TARGET: ok (N executions, 0 crashes, R regression inputs)
#   fuzz TARGET: FAILED (...)
# and exits non-zero when any target failed to build, crashed, broke an
# invariant, ran out of time or memory, or failed a regression input.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=build-fuzz

secs=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
all=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done | sed 's/^fuzz_//' | grep -vx common)
targets=${*:-$all}
for t in $targets; do
    if ! grep -qx "$t" <<<"$all"; then
        echo "fuzz.sh: no target \"$t\" (targets: $(echo $all))" >&2
        exit 2
    fi
done

# Build what is asked for (clang is a Debian package: scripts/install-deps.sh).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
build_ok=true
if [ ! -f "$BUILD/build.ninja" ]; then
    rm -rf "$BUILD"
    CC=clang meson setup "$BUILD" -Dfuzz=true >"$log" 2>&1 || build_ok=false
fi
if $build_ok; then
    # shellcheck disable=SC2046
    ninja -C "$BUILD" $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done) >>"$log" 2>&1 ||
        build_ok=false
fi
if ! $build_ok; then
    tail -40 "$log"
    for t in $targets; do echo "fuzz $t: FAILED (build)"; done
    exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1
status=0
for t in $targets; do
    bin="$BUILD/tests/fuzz/fuzz_$t"
    art="$BUILD/artifacts/$t"
    work=$(mktemp -d)
    rm -rf "$art"
    mkdir -p "$art" "$work/corpus"
    [ -d "tests/fuzz/corpus/$t" ] && cp -R "tests/fuzz/corpus/$t/." "$work/corpus/"
    regressions=()
    if [ -d "tests/fuzz/regressions/$t" ]; then
        for f in "tests/fuzz/regressions/$t"/*; do
            [ -f "$f" ] && regressions+=("$f")
        done
    fi
    dict=""
    for d in "tests/fuzz/$t.dict" "tests/fuzz/${t%%_*}.dict"; do
        if [ -f "$d" ]; then
            dict="-dict=$d"
            break
        fi
    done

    # shellcheck disable=SC2086
    "$bin" -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$ROOT/$art/" $dict "$work/corpus" >"$work/run.log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/run.log" | grep -o '[0-9]*$')
    crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    why=""
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        why="exit $rc, $crashes crash input(s) in $art/"
        # The report, without libFuzzer's and libc's own stack frames.
        grep -E 'ERROR|runtime error|invariant failed|SUMMARY|#[0-9]+ 0x' "$work/run.log" |
            grep -vE ' in (fuzzer::|__sanitizer|__libc|_start|abort|raise|__pthread)|libc\.so' |
            head -30
    fi
    rrc=0
    if [ ${#regressions[@]} -gt 0 ]; then
        "$bin" -rss_limit_mb=1024 -timeout=10 -artifact_prefix="$work/" "${regressions[@]}" \
            >"$work/regress.log" 2>&1
        rrc=$?
        if [ "$rrc" -ne 0 ]; then
            why="${why:+$why; }a regression input fails (exit $rrc)"
            grep -E 'Running:|ERROR|runtime error|invariant failed|SUMMARY' "$work/regress.log" |
                head -30
        fi
    fi
    summary="${execs:-0} executions, $crashes crashes, ${#regressions[@]} regression inputs"
    if [ -z "$why" ]; then
        echo "fuzz $t: ok ($summary)"
    else
        echo "fuzz $t: FAILED ($summary; $why)"
        status=1
    fi
    rm -rf "$work"
done
exit $status
