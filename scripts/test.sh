#!/bin/bash
# The whole test suite, as README.md and .ci/run run it (as root, Debian 12):
#   1. install every package needed (scripts/install-deps.sh);
#   2. check the C formatting against .clang-format;
#   3. build with warnings as errors, run the unit tests (cmocka), the
#      integration tests (pytest: real sockets, a private Postfix, the demo)
#      and the benchmark once, quickly (bench/run.py --quick: it must run);
#   4. build again with ASan and UBSan and run both suites on that build;
#   5. fuzz every parser that sees outside data for 10 s (scripts/fuzz.sh).
# Ends with "N passed, N failed"; exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
passed=0
failed=0

note() { printf '\n### %s\n' "$*"; }
count() { # count NAME OK|FAIL
    if [ "$2" = OK ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

# Unit tests: every cmocka case counts (TAP "ok"/"not ok" lines); a test
# program that crashes or exits non-zero counts as one more failure.
unit_tests() { # unit_tests BUILDDIR
    local t out rc ok bad
    for t in "$1"/tests/unit/test_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1); rc=$?
        ok=$(grep -c '^ok ' <<<"$out"); bad=$(grep -c '^not ok ' <<<"$out")
        passed=$((passed + ok)); failed=$((failed + bad))
        if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
            echo "$out" | grep -v '^ok ' | head -50
            [ "$bad" -eq 0 ] && failed=$((failed + 1))
            echo "FAILED: $t (exit $rc)"
        fi
        echo "$(basename "$t"): $ok passed, $bad failed"
    done
}

# Integration tests: pytest's summary gives the counts.
integration_tests() { # integration_tests BUILDDIR
    local out summary p f e
    out=$(MXSCREEN_BIN="$ROOT/$1/mxscreen" $PY -m pytest -p no:cacheprovider -q -rfE \
        tests/integration 2>&1)
    echo "$out" | tail -40
    summary=$(echo "$out" | tail -1)
    p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || true)
    f=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || true)
    e=$(grep -oE '[0-9]+ errors?' <<<"$summary" | grep -oE '[0-9]+' || true)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
    if [ -z "$p$f$e" ]; then failed=$((failed + 1)); echo "FAILED: pytest did not run"; fi
}

note "installing dependencies"
if scripts/install-deps.sh; then count install-deps OK; else count install-deps FAIL; fi

note "formatting"
if scripts/check-format.sh; then count check-format OK; else count check-format FAIL; fi

note "build (warnings are errors)"
if scripts/build.sh >build.log 2>&1; then
    count build OK
    note "unit tests"
    unit_tests build
    note "integration tests"
    integration_tests build
    # The benchmark is code too: every workload must run (its numbers are
    # measurements, not judged here; see bench/README.md).
    note "benchmark smoke test (bench/run.py --quick)"
    if $PY bench/run.py --quick --builddir build >bench-smoke.log 2>&1; then
        tail -20 bench-smoke.log; count bench-smoke OK
    else
        tail -60 bench-smoke.log; count bench-smoke FAIL
    fi
else
    cat build.log; count build FAIL
fi

note "build with AddressSanitizer and UndefinedBehaviorSanitizer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if scripts/build.sh --asan >build-asan.log 2>&1; then
    count build-asan OK
    note "unit tests (sanitizers)"
    unit_tests build-asan
    note "integration tests (sanitizers)"
    integration_tests build-asan
else
    cat build-asan.log; count build-asan FAIL
fi

# A smoke test of the libFuzzer targets (tests/fuzz/, README "Fuzzing"):
# each runs 10 s from its seeds and once over its regression inputs, and
# counts as one test.
note "fuzzing smoke test (scripts/fuzz.sh 10)"
scripts/fuzz.sh 10 >fuzz-smoke.log 2>&1
rc=$?
grep '^fuzz [a-z_0-9]*: ' fuzz-smoke.log
ok=$(grep -c '^fuzz [a-z_0-9]*: ok' fuzz-smoke.log)
bad=$(grep -c '^fuzz [a-z_0-9]*: FAILED' fuzz-smoke.log)
passed=$((passed + ok)); failed=$((failed + bad))
if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
    grep -v '^fuzz [a-z_0-9]*: ok' fuzz-smoke.log | tail -60
    [ "$bad" -eq 0 ] && failed=$((failed + 1))
    echo "FAILED: scripts/fuzz.sh (exit $rc)"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
