/*
 * fuzz - what the libFuzzer targets of tests/fuzz/ share
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput() for one parser that
 * sees outside data and checks the parser's invariants on every input,
 * not only that it does not crash.  These helpers:
 *
 *   fuzz_init()     once per process: mxscreen's log goes to /dev/null (the
 *                   parsers warn, and a fuzzer runs them millions of times)
 *   fuzz_str()      the input as a NUL-terminated string, cut at its first
 *                   NUL as C code would read it (malloc'd; the caller frees)
 *   fuzz_file()     the input as a file that code under test may fopen():
 *                   an anonymous memfd, named "/proc/self/fd/N" (one per
 *                   process, rewritten on every call)
 *   FUZZ_CHECK()    an invariant: when it is false, print it and abort, so
 *                   that libFuzzer reports it and keeps the input
 *
 * The targets are linked with -Wl,--wrap=fopen (tests/fuzz/meson.build):
 * code under test may read only fuzz_file()'s files, never a path taken
 * from the input (an address list's "/file/name", "texthash:/etc/...");
 * any other fopen() for reading fails with ENOENT.
 */
#ifndef MXS_FUZZ_H
#define MXS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_init(void);
char *fuzz_str(const uint8_t *data, size_t size);
const char *fuzz_file(const uint8_t *data, size_t size);
void fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

static inline void fuzz_check(bool ok, const char *what, const char *file, int line)
{
    if (!ok)
        fuzz_fail(what, file, line);
}

#define FUZZ_CHECK(cond) fuzz_check((cond), #cond, __FILE__, __LINE__)

#endif
