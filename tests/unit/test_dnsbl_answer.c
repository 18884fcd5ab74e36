/*
 * test_dnsbl_answer - what one DNSBL answer says (dnsbl_parse_answer(),
 * src/dnsbl/dnsbl_int.h): listed, not listed with the negative TTL of the
 * SOA, an error code, a malformed answer, a DNS failure; real wire-format
 * messages, case by case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <ares.h>
#include <cmocka.h>

#include "dnsbl/dnsbl_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A message as a string literal, and its length. */
#define MSG(s) s, sizeof(s) - 1

/* The header: id 0x1234, a response, RCODE, one question, AN answers, NS authorities. */
#define HDR(rcode, an, ns) "\x12\x34\x85" rcode "\0\x01\0" an "\0" ns "\0\0"
#define NOERROR            "\x80"
#define NXDOMAIN           "\x83"
/* 2.0.0.127.zen.example, A, IN (zen.example is at offset 22) */
#define QUESTION                                                                                   \
    "\x01"                                                                                         \
    "2\x01"                                                                                        \
    "0\x01"                                                                                        \
    "0\x03"                                                                                        \
    "127\x03"                                                                                      \
    "zen\x07"                                                                                      \
    "example\0\0\x01\0\x01"
/* An A record for the question's name, with a 4-byte TTL and address. */
#define A_RR(ttl, addr) "\xc0\x0c\0\x01\0\x01" ttl "\0\x04" addr
/* The SOA of zen.example, with a 4-byte TTL. */
#define SOA_RR(ttl)                                                                                \
    "\xc0\x16\0\x06\0\x01" ttl "\0\x27\x03"                                                        \
    "ns1\xc0\x16\x0a"                                                                              \
    "hostmaster\xc0\x16"                                                                           \
    "\0\0\0\x01\0\0\x0e\x10\0\0\x02\x58\0\x01\x51\x80\0\0\x01\x2c"

struct answer_case {
    const char *what;
    int status;
    const char *msg; /* NULL: no message */
    size_t len;
    enum dnsbl_answer_kind kind;
    size_t naddrs;
    int ttl;
};

static const struct answer_case cases[] = {
    {"listed", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x01", "\0") QUESTION A_RR("\0\0\x01\x2c", "\x7f\0\0\x02")),
     DNSBL_ANSWER_LISTED, 1, 300},
    {"listed thrice: the smallest TTL", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x03", "\0") QUESTION A_RR("\0\0\x01\x2c", "\x7f\0\0\x02")
             A_RR("\0\0\0\x3c", "\x7f\0\0\x04") A_RR("\0\0\x0e\x10", "\x7f\0\0\x0a")),
     DNSBL_ANSWER_LISTED, 3, 60},
    {"error code 127.255.255.254", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x01", "\0") QUESTION A_RR("\0\0\0\x3c", "\x7f\xff\xff\xfe")),
     DNSBL_ANSWER_ERROR_CODE, 0, -1},
    {"error code outside 127/8", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x01", "\0") QUESTION A_RR("\0\0\0\x3c", "\xc0\0\x02\x01")),
     DNSBL_ANSWER_ERROR_CODE, 0, -1},
    {"listed, then an error code: the error wins", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x02", "\0") QUESTION A_RR("\0\0\x01\x2c", "\x7f\0\0\x03")
             A_RR("\0\0\0\x3c", "\x7f\xff\xff\xfc")),
     DNSBL_ANSWER_ERROR_CODE, 0, -1},
    {"NXDOMAIN: the SOA's TTL", ARES_ENOTFOUND,
     MSG(HDR(NXDOMAIN, "\0", "\x01") QUESTION SOA_RR("\0\0\x03\x84")), DNSBL_ANSWER_NOT_LISTED, 0,
     900},
    {"NXDOMAIN: the smaller of two SOAs", ARES_ENOTFOUND,
     MSG(HDR(NXDOMAIN, "\0", "\x02") QUESTION SOA_RR("\0\0\x03\x84") SOA_RR("\0\0\0\x78")),
     DNSBL_ANSWER_NOT_LISTED, 0, 120},
    {"NODATA: the SOA's TTL", ARES_ENODATA,
     MSG(HDR(NOERROR, "\0", "\x01") QUESTION SOA_RR("\0\0\0\x78")), DNSBL_ANSWER_NOT_LISTED, 0,
     120},
    {"NXDOMAIN without an authority", ARES_ENOTFOUND, MSG(HDR(NXDOMAIN, "\0", "\0") QUESTION),
     DNSBL_ANSWER_NOT_LISTED, 0, -1},
    {"NXDOMAIN: an SOA TTL with its top bit set is no TTL", ARES_ENOTFOUND,
     MSG(HDR(NXDOMAIN, "\0", "\x01") QUESTION SOA_RR("\x80\0\0\x05")), DNSBL_ANSWER_NOT_LISTED, 0,
     -1},
    {"NXDOMAIN: the SOA cut short", ARES_ENOTFOUND,
     MSG(HDR(NXDOMAIN, "\0", "\x01") QUESTION "\xc0\x16\0\x06\0\x01\0\0\x03\x84\0\x27\x03"),
     DNSBL_ANSWER_NOT_LISTED, 0, -1},
    {"success, cut short", ARES_SUCCESS, MSG(HDR(NOERROR, "\x03", "\0") QUESTION "\xc0"),
     DNSBL_ANSWER_MALFORMED, 0, -1},
    {"SERVFAIL", ARES_ESERVFAIL, NULL, 0, DNSBL_ANSWER_FAILED, 0, -1},
    {"timeout", ARES_ETIMEOUT, NULL, 0, DNSBL_ANSWER_FAILED, 0, -1},
    /* fuzz_dns_answer: NULL + 0 (undefined in C) before the NULL check */
    {"NXDOMAIN without a message", ARES_ENOTFOUND, NULL, 0, DNSBL_ANSWER_NOT_LISTED, 0, -1},
    /* fuzz_dns_answer: c-ares gives a TTL of 2^31 or more as a negative
     * int; it went into the score as "no TTL" (RFC 2181 section 8: 0) */
    {"listed: a TTL with its top bit set reads as 0", ARES_SUCCESS,
     MSG(HDR(NOERROR, "\x01", "\0") QUESTION A_RR("\x80\0\0\x05", "\x7f\0\0\x02")),
     DNSBL_ANSWER_LISTED, 1, 0},
};

static void test_answer_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        const struct answer_case *c = &cases[i];
        struct dnsbl_answer a;
        dnsbl_parse_answer(c->status, (const unsigned char *)c->msg, (int)c->len, &a);
        if (a.kind != c->kind || a.naddrs != c->naddrs || a.ttl != c->ttl)
            fail_msg("%s: got kind %d, %zu addresses, TTL %d; want kind %d, %zu, %d", c->what,
                     (int)a.kind, a.naddrs, a.ttl, (int)c->kind, c->naddrs, c->ttl);
    }
}

/* The addresses of a listing, and the error code that stops one. */
static void test_answer_addresses(void **state)
{
    static const char listed[] = HDR(NOERROR, "\x02", "\0")
        QUESTION A_RR("\0\0\x01\x2c", "\x7f\0\0\x02") A_RR("\0\0\x01\x2c", "\x7f\0\0\x0b");
    static const char error[] =
        HDR(NOERROR, "\x01", "\0") QUESTION A_RR("\0\0\0\x3c", "\x7f\xff\xff\xfe");
    struct dnsbl_answer a;

    (void)state;
    dnsbl_parse_answer(ARES_SUCCESS, (const unsigned char *)listed, sizeof(listed) - 1, &a);
    assert_int_equal(a.kind, DNSBL_ANSWER_LISTED);
    assert_int_equal(a.naddrs, 2);
    assert_memory_equal(a.addrs[0], "\x7f\0\0\x02", 4);
    assert_memory_equal(a.addrs[1], "\x7f\0\0\x0b", 4);
    dnsbl_parse_answer(ARES_SUCCESS, (const unsigned char *)error, sizeof(error) - 1, &a);
    assert_int_equal(a.kind, DNSBL_ANSWER_ERROR_CODE);
    assert_memory_equal(&a.error_addr.s_addr, "\x7f\xff\xff\xfe", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_table),
        cmocka_unit_test(test_answer_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
