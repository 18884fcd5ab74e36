/*
 * fuzz_addr - address text, CIDR patterns, host:port and the client key
 * (src/net/addr.c)
 *
 * Input: two bytes for endpoint_key()'s prefix lengths, then a text that is
 * read as a CIDR pattern, an address and a host:port; the same bytes are
 * also read as a raw socket address.  Checked:
 *   - cidr_parse(): a pattern has no host bits, its prefix fits its family,
 *     it contains its own network, and "net/bits" (IPv6 in brackets)
 *     parses back to the same pattern; a refusal says why
 *   - addr_parse(): inet_ntop() of the result parses to the same address
 *   - hostport_parse(): a UNIX path is the text itself; an address written
 *     back as "[addr]:port" or "addr:port" parses to the same
 *   - endpoint_set() makes a printable address and port; endpoint_key()
 *     fits ENDPOINT_KEY_MAX, and a network key is a valid CIDR pattern
 *     that contains the endpoint
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "fuzz.h"
#include "net/addr.h"

static void check_err(const char *err, size_t len)
{
    FUZZ_CHECK(memchr(err, '\0', len) != NULL && err[0] != '\0');
}

static void check_cidr(const char *text)
{
    struct cidr c, back;
    char err[400], buf[INET6_ADDRSTRLEN + 8], net[INET6_ADDRSTRLEN];

    memset(err, 'X', sizeof(err));
    if (cidr_parse(text, &c, err, sizeof(err)) < 0) {
        check_err(err, sizeof(err));
        return;
    }
    FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6);
    int max = c.family == AF_INET ? 32 : 128;
    FUZZ_CHECK(c.bits >= 0 && c.bits <= max);
    for (int i = 0; i < max / 8; i++) {
        int keep = c.bits - i * 8;
        unsigned char mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
        FUZZ_CHECK((c.net[i] & ~mask) == 0);
    }
    FUZZ_CHECK(inet_ntop(c.family, c.net, net, sizeof(net)) != NULL);
    snprintf(buf, sizeof(buf), c.family == AF_INET ? "%s/%d" : "[%s]/%d", net, c.bits);
    FUZZ_CHECK(cidr_parse(buf, &back, err, sizeof(err)) == 0);
    FUZZ_CHECK(memcmp(&c, &back, sizeof(c)) == 0);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (c.family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c.net, 4);
    } else {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c.net, 16);
    }
    FUZZ_CHECK(cidr_match(&c, (struct sockaddr *)&ss));
}

static void check_addr_text(const char *text)
{
    struct sockaddr_storage ss, back;
    socklen_t len, blen;
    char buf[INET6_ADDRSTRLEN];

    if (!addr_parse(text, &ss, &len))
        return;
    const void *a = ss.ss_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    FUZZ_CHECK(inet_ntop(ss.ss_family, a, buf, sizeof(buf)) != NULL);
    FUZZ_CHECK(addr_parse(buf, &back, &blen));
    FUZZ_CHECK(blen == len && memcmp(&ss, &back, len) == 0);
}

static void check_hostport(const char *text)
{
    struct hostport hp, back;
    char err[400], buf[INET6_ADDRSTRLEN + 16], a[INET6_ADDRSTRLEN];

    memset(err, 'X', sizeof(err));
    if (hostport_parse(text, &hp, err, sizeof(err)) < 0) {
        check_err(err, sizeof(err));
        return;
    }
    if (hp.sa.ss_family == AF_UNIX) {
        FUZZ_CHECK(strcmp(((struct sockaddr_un *)&hp.sa)->sun_path, text) == 0);
        return;
    }
    FUZZ_CHECK(hp.sa.ss_family == AF_INET || hp.sa.ss_family == AF_INET6);
    if (hp.sa.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&hp.sa;
        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
        FUZZ_CHECK(ntohs(s4->sin_port) >= 1);
        snprintf(buf, sizeof(buf), "%s:%u", a, ntohs(s4->sin_port));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&hp.sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
        FUZZ_CHECK(ntohs(s6->sin6_port) >= 1);
        if (hp.wildcard)
            snprintf(buf, sizeof(buf), "*:%u", ntohs(s6->sin6_port));
        else
            snprintf(buf, sizeof(buf), "[%s]:%u", a, ntohs(s6->sin6_port));
    }
    FUZZ_CHECK(hostport_parse(buf, &back, err, sizeof(err)) == 0);
    FUZZ_CHECK(back.salen == hp.salen && back.wildcard == hp.wildcard &&
               memcmp(&back.sa, &hp.sa, hp.salen) == 0);
}

/* A raw socket address from the input's bytes; its key and its network. */
static void check_endpoint(const uint8_t *data, size_t size, int v4bits, int v6bits)
{
    struct sockaddr_in6 s6;
    struct endpoint ep;
    char key[ENDPOINT_KEY_MAX + 8];

    if (size < 2)
        return;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = (data[0] & 1) ? AF_INET6 : AF_INET;
    memcpy((char *)&s6 + 2, data + 1, size - 1 < sizeof(s6) - 2 ? size - 1 : sizeof(s6) - 2);
    socklen_t len = s6.sin6_family == AF_INET6 ? sizeof(s6) : sizeof(struct sockaddr_in);
    if (endpoint_set(&ep, (struct sockaddr *)&s6, len) < 0)
        return;
    FUZZ_CHECK(ep.sa.ss_family == AF_INET || ep.sa.ss_family == AF_INET6);
    FUZZ_CHECK(memchr(ep.addr, '\0', sizeof(ep.addr)) && memchr(ep.port, '\0', sizeof(ep.port)));
    FUZZ_CHECK(ep.addr[0] != '\0' && ep.port[0] != '\0');

    memset(key, 'X', sizeof(key));
    endpoint_key(&ep, v4bits, v6bits, key, ENDPOINT_KEY_MAX);
    FUZZ_CHECK(memchr(key, '\0', ENDPOINT_KEY_MAX) != NULL);
    if (strchr(key, '/')) {
        struct cidr c;
        char err[400], text[ENDPOINT_KEY_MAX + 2];
        /* An IPv6 key has no brackets; cidr_parse() takes it bare too. */
        snprintf(text, sizeof(text), "%s", key);
        FUZZ_CHECK(cidr_parse(text, &c, err, sizeof(err)) == 0);
        FUZZ_CHECK(cidr_match(&c, (const struct sockaddr *)&ep.sa));
    } else {
        FUZZ_CHECK(strcmp(key, ep.addr) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int v4bits = data[0] % 40 - 4, v6bits = data[1] % 136 - 4;
    char *text = fuzz_str(data + 2, size - 2);

    check_cidr(text);
    check_addr_text(text);
    check_hostport(text);
    check_endpoint(data + 2, size - 2, v4bits, v6bits);
    free(text);
    return 0;
}
