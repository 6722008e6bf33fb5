/*
 * libFuzzer target for the daemon-mode wire codec (tether_wire.c).  Not
 * part of mod_tether; built with -DTETHER_FUZZ=ON, see tests/fuzz/README.md.
 *
 * Each input is read twice: as a frame (header, then the payload the
 * header announces, decoded by type) and as a bare pair list.  Whatever
 * decodes must point inside the input and re-encode to the very same
 * bytes (the encoding is canonical); a mismatch aborts, which libFuzzer
 * reports as a crash.  ASan and UBSan catch reads past the end and
 * arithmetic that wraps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether_wire.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            abort();                                                       \
        }                                                                  \
    } while (0)

static tether_wire_pair_t pairs[TETHER_WIRE_MAX_PAIRS];

static int inside(const uint8_t *data, size_t size, const char *p,
                  uint32_t len)
{
    const uint8_t *q = (const uint8_t *)p;

    return q >= data && (size_t)(q - data) <= size
           && len <= size - (size_t)(q - data);
}

static void fuzz_pairs(const uint8_t *data, size_t size)
{
    size_t n = 0, counted = 0, i, enc;
    unsigned char *out;
    int rc, rc_count;

    rc = tether_wire_pairs_decode(data, size, pairs, TETHER_WIRE_MAX_PAIRS,
                                  &n);
    rc_count = tether_wire_pairs_decode(data, size, NULL, 0, &counted);
    /* Counting and decoding agree on every input. */
    CHECK(rc == rc_count);
    /* The declared count sizes the array of a one-pass decoding. */
    CHECK(rc != TETHER_WIRE_OK
          || tether_wire_pairs_count(data, size) == counted);
    if (rc != TETHER_WIRE_OK) {
        CHECK(rc < 0 && tether_wire_strerror(rc) != NULL);
        return;
    }
    CHECK(n == counted && n <= TETHER_WIRE_MAX_PAIRS);
    for (i = 0; i < n; i++) {
        CHECK(inside(data, size, pairs[i].key, pairs[i].key_len));
        CHECK(inside(data, size, pairs[i].value, pairs[i].value_len));
    }
    if (n > 0) {
        size_t m = 0;

        CHECK(tether_wire_pairs_decode(data, size, pairs, n - 1, &m)
              == TETHER_WIRE_ECOUNT);
        CHECK(m == 0);
        /* The failed call may have overwritten entries: decode again. */
        CHECK(tether_wire_pairs_decode(data, size, pairs, n, &m)
              == TETHER_WIRE_OK && m == n);
    }

    /* Re-encode: same size, same bytes; one byte less does not fit. */
    if (size > TETHER_WIRE_MAX_PAYLOAD) {
        CHECK(tether_wire_pairs_size(pairs, n) == 0);
        return;
    }
    CHECK(tether_wire_pairs_size(pairs, n) == size);
    out = malloc(size);
    CHECK(out != NULL);
    enc = tether_wire_pairs_encode(out, size, pairs, n);
    CHECK(enc == size && memcmp(out, data, size) == 0);
    CHECK(tether_wire_pairs_encode(out, size - 1, pairs, n) == 0);
    free(out);
}

static void fuzz_payload(uint8_t type, const uint8_t *p, size_t len)
{
    unsigned char out[TETHER_WIRE_RESP_FILE_SIZE];
    uint32_t want, reason, detail;
    uint64_t offset, length;
    uint16_t status;
    const char *msg;
    size_t msg_len;

    switch (type) {
        case TETHER_WIRE_REQ_HEAD:
        case TETHER_WIRE_RESP_HEAD:
            fuzz_pairs(p, len);
            break;
        case TETHER_WIRE_BODY_WANT:
            if (tether_wire_body_want_decode(p, len, &want)
                == TETHER_WIRE_OK) {
                tether_wire_body_want_encode(out, want);
                CHECK(len == 4 && memcmp(out, p, 4) == 0);
            }
            break;
        case TETHER_WIRE_REQ_ABORT:
            if (tether_wire_req_abort_decode(p, len, &reason, &detail)
                == TETHER_WIRE_OK) {
                CHECK(reason >= TETHER_WIRE_ABORT_CLOSED
                      && reason <= TETHER_WIRE_ABORT_ERROR);
                tether_wire_req_abort_encode(out, reason, detail);
                CHECK(len == 8 && memcmp(out, p, 8) == 0);
            }
            break;
        case TETHER_WIRE_RESP_FILE:
            if (tether_wire_resp_file_decode(p, len, &offset, &length)
                == TETHER_WIRE_OK) {
                CHECK(offset <= (uint64_t)INT64_MAX
                      && length <= (uint64_t)INT64_MAX - offset);
                tether_wire_resp_file_encode(out, offset, length);
                CHECK(len == 16 && memcmp(out, p, 16) == 0);
            }
            break;
        case TETHER_WIRE_RESP_ERROR:
            if (tether_wire_resp_error_decode(p, len, &status, &msg,
                                              &msg_len) == TETHER_WIRE_OK) {
                unsigned char *buf = malloc(len);

                CHECK(buf != NULL && status >= 400 && status <= 599);
                CHECK(msg_len == len - 2 && inside(p, len, msg,
                                                   (uint32_t)msg_len));
                CHECK(tether_wire_resp_error_encode(buf, len, status, msg,
                                                    msg_len) == len);
                CHECK(memcmp(buf, p, len) == 0);
                CHECK(tether_wire_resp_error_encode(buf, len - 1, status,
                                                    msg, msg_len) == 0);
                free(buf);
            }
            break;
        default:
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t kinds[] = {
        TETHER_WIRE_REQ_HEAD, TETHER_WIRE_BODY_WANT, TETHER_WIRE_RESP_FILE,
        TETHER_WIRE_RESP_ERROR, TETHER_WIRE_REQ_ABORT
    };
    tether_wire_header_t h;
    unsigned char hdr[TETHER_WIRE_HEADER_SIZE];
    size_t i;

    if (size >= TETHER_WIRE_HEADER_SIZE
        && tether_wire_header_decode(data, &h) == TETHER_WIRE_OK) {
        size_t avail = size - TETHER_WIRE_HEADER_SIZE;

        CHECK(h.length <= TETHER_WIRE_MAX_PAYLOAD);
        CHECK((h.flags & ~(unsigned)TETHER_WIRE_FLAGS_KNOWN) == 0);
        tether_wire_header_encode(hdr, h.type, h.flags, h.length);
        CHECK(memcmp(hdr, data, TETHER_WIRE_HEADER_SIZE) == 0);
        if (h.length <= avail) {
            fuzz_payload(h.type, data + TETHER_WIRE_HEADER_SIZE, h.length);
        }
    }

    /* The whole input as each kind of structured payload, too. */
    for (i = 0; i < sizeof(kinds); i++) {
        fuzz_payload(kinds[i], data, size);
    }
    return 0;
}
