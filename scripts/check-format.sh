#!/bin/sh
# Fail (and list the files) when clang-format would change any C file.
set -eu
cd "$(dirname "$0")/.."
bad=""
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find src tests -name '*.[ch]'); do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "check-format: clang-format would change:$bad"
    exit 1
fi
echo "check-format: ok"
