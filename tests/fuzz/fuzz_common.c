/*
 * fuzz_common - helpers of the libFuzzer targets; see fuzz.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "log/log.h"
#include "util/mem.h"

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

/* Quiet the log, once. */
void fuzz_init(void)
{
    static bool done;
    char err[256];

    if (done)
        return;
    done = true;
    if (log_open(LOG_TARGET_FILE, "fuzz", "localhost", "/dev/null", "mail", err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
}

/* The input as a C string, cut at its first NUL. */
char *fuzz_str(const uint8_t *data, size_t size)
{
    return xstrndup((const char *)data, size);
}

/* The input as a readable file; see fuzz.h. */
const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("fuzz: memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz: writing the memfd");
        abort();
    }
    return path;
}

/* A broken invariant: say which, then abort (libFuzzer keeps the input). */
void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n", file, line, what);
    abort();
}

/*
 * fopen() for the code under test: reading only fuzz_file()'s memfd.
 * Writing stays allowed: libFuzzer itself writes crash inputs with fopen().
 */
FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (strchr(mode, 'w') == NULL && strchr(mode, 'a') == NULL &&
        strncmp(path, "/proc/self/fd/", 14) != 0) {
        errno = ENOENT;
        return NULL;
    }
    return __real_fopen(path, mode);
}
