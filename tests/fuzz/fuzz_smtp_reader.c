/*
 * fuzz_smtp_reader - the bounded SMTP line reader (src/smtp/reader.c)
 *
 * Input: two bytes of line limit (0..2099), one byte N, N bytes of chunk
 * sizes, then the byte stream a client sends.  The stream is fed three
 * times, as the engine feeds it (reader_feed(), reader_line(),
 * reader_next() after each line, stop at READER_TOOLONG): whole, in the
 * chunks the input chose, and one byte at a time.  Every run must give
 * the events of a model read off the whole stream at once:
 *
 *   - a line is the bytes before an LF, less one CR before the LF (bare_lf
 *     when there is none); it is accepted when it has fewer than LIMIT
 *     bytes (reader.h: LIMIT - 1 bytes plus CR LF is accepted)
 *   - otherwise READER_TOOLONG, after exactly LIMIT bytes of that line
 *   - a line handed out is NUL-terminated, holds no LF, and the reader's
 *     buffer never grows past LIMIT + 2 bytes
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp/reader.h"

#define MAX_CHUNKS 32

struct stream {
    const unsigned char *p; /* the client's bytes */
    size_t n;
    size_t limit;
};

/* The model's next event from OFF: 1 a line, 0 no complete line, -1 too long. */
static int model_next(const struct stream *s, size_t off, size_t *len, bool *bare, size_t *next)
{
    const unsigned char *lf = memchr(s->p + off, '\n', s->n - off);
    size_t seg = lf ? (size_t)(lf - (s->p + off)) : s->n - off;

    if (lf == NULL)
        return seg > s->limit ? -1 : 0;
    *bare = seg == 0 || s->p[off + seg - 1] != '\r';
    *len = *bare ? seg : seg - 1;
    if (*len >= s->limit)
        return -1;
    *next = off + seg + 1;
    return 1;
}

/* Feed the stream in chunks of SIZES (cycled; NULL: all at once) and check every event. */
static void run(const struct stream *s, const size_t *sizes, size_t nsizes)
{
    struct reader r;
    size_t off = 0, model_off = 0, k = 0;
    bool ended = false;

    reader_init(&r, s->limit);
    while (off < s->n && !ended) {
        size_t chunk = sizes ? sizes[k++ % nsizes] : s->n - off;
        if (chunk > s->n - off)
            chunk = s->n - off;
        size_t coff = 0;
        while (coff < chunk) {
            size_t used = (size_t)-1;
            enum reader_status st =
                reader_feed(&r, (const char *)s->p + off + coff, chunk - coff, &used);
            FUZZ_CHECK(used <= chunk - coff);
            FUZZ_CHECK(r.cap <= s->limit + 2);
            FUZZ_CHECK(r.len <= s->limit + 1);
            coff += used;
            size_t mlen = 0, mnext = 0;
            bool mbare = false;
            int want = model_next(s, model_off, &mlen, &mbare, &mnext);
            if (st == READER_MORE) {
                FUZZ_CHECK(coff == chunk);
                /* More is fine only while the model sees no event in what was fed. */
                if (want == 1)
                    FUZZ_CHECK(mnext > off + coff);
                if (want == -1)
                    FUZZ_CHECK(model_off + s->limit >= off + coff);
                break;
            }
            if (st == READER_TOOLONG) {
                FUZZ_CHECK(want == -1);
                FUZZ_CHECK(off + coff == model_off + s->limit);
                ended = true;
                break;
            }
            FUZZ_CHECK(st == READER_LINE);
            FUZZ_CHECK(want == 1);
            size_t len = (size_t)-1;
            const char *line = reader_line(&r, &len);
            FUZZ_CHECK(len == mlen && len < s->limit);
            FUZZ_CHECK(r.bare_lf == mbare);
            FUZZ_CHECK(line[len] == '\0');
            FUZZ_CHECK(memcmp(line, s->p + model_off, len) == 0);
            FUZZ_CHECK(off + coff == mnext);
            model_off = mnext;
            reader_next(&r);
            FUZZ_CHECK(r.len == 0 && !r.cr && !r.bare_lf);
        }
        off += chunk;
    }
    if (!ended) {
        /* All fed: the model has no event left either. */
        size_t mlen, mnext;
        bool mbare;
        FUZZ_CHECK(model_next(s, model_off, &mlen, &mbare, &mnext) == 0);
    }
    reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t sizes[MAX_CHUNKS], nsizes;
    const size_t one = 1;

    if (size < 3)
        return 0;
    struct stream s = {.limit = ((size_t)data[0] << 8 | data[1]) % 2100};
    nsizes = data[2] % MAX_CHUNKS;
    if (size < 3 + nsizes)
        return 0;
    for (size_t i = 0; i < nsizes; i++)
        sizes[i] = (size_t)data[3 + i] + 1;
    s.p = data + 3 + nsizes;
    s.n = size - 3 - nsizes;

    run(&s, NULL, 0);
    if (nsizes)
        run(&s, sizes, nsizes);
    run(&s, &one, 1);
    return 0;
}
