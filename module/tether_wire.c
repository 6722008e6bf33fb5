/*
 * Encoding and decoding of the daemon-mode frames; see tether_wire.h.
 *
 * Plain C99 on purpose: this file is linked into mod_tether, into the
 * tether._wire test module and into the fuzzer, none of which share
 * anything but this.  Decoders treat their input as hostile: a length is
 * compared with the bytes that remain before anything is added to a
 * position, so no sum can wrap, whatever size_t is.
 */
#include <string.h>

#include "tether_wire.h"

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static uint32_t get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16)
           | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t get_u64(const unsigned char *p)
{
    return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

const char *tether_wire_strerror(int rc)
{
    switch (rc) {
        case TETHER_WIRE_OK:
            return "no error";
        case TETHER_WIRE_ETRUNCATED:
            return "frame truncated: a length runs past the end of the data";
        case TETHER_WIRE_ETYPE:
            return "unknown frame type";
        case TETHER_WIRE_EFLAGS:
            return "undefined frame flags set";
        case TETHER_WIRE_ERESERVED:
            return "reserved frame header bytes are not zero";
        case TETHER_WIRE_ELENGTH:
            return "frame payload length too large or wrong for its type";
        case TETHER_WIRE_ECOUNT:
            return "too many pairs in a pair list";
        case TETHER_WIRE_ETRAILING:
            return "unexpected bytes after the end of the payload";
        case TETHER_WIRE_EVALUE:
            return "a value in the payload is out of range";
        default:
            return "unknown wire codec error";
    }
}

/* --- header ------------------------------------------------------------ */

void tether_wire_header_encode(unsigned char out[TETHER_WIRE_HEADER_SIZE],
                               uint8_t type, uint8_t flags, uint32_t length)
{
    out[0] = type;
    out[1] = flags;
    out[2] = 0;
    out[3] = 0;
    put_u32(out + 4, length);
}

int tether_wire_header_decode(const unsigned char in[TETHER_WIRE_HEADER_SIZE],
                              tether_wire_header_t *h)
{
    uint32_t length = get_u32(in + 4);
    uint32_t min = 0;
    uint32_t max = TETHER_WIRE_MAX_PAYLOAD;

    switch (in[0]) {
        case TETHER_WIRE_REQ_HEAD:
        case TETHER_WIRE_RESP_HEAD:
            min = 4;                /* the pair count */
            break;
        case TETHER_WIRE_REQ_BODY:
        case TETHER_WIRE_RESP_BODY:
        case TETHER_WIRE_RESP_ABORT:
            break;
        case TETHER_WIRE_REQ_END:
        case TETHER_WIRE_RESP_END:
        case TETHER_WIRE_GOODBYE:
            max = 0;
            break;
        case TETHER_WIRE_HELLO:
            min = max = TETHER_WIRE_HELLO_SIZE;
            break;
        case TETHER_WIRE_BODY_WANT:
            min = max = TETHER_WIRE_BODY_WANT_SIZE;
            break;
        case TETHER_WIRE_REQ_ABORT:
            min = max = TETHER_WIRE_REQ_ABORT_SIZE;
            break;
        case TETHER_WIRE_RESP_FILE:
            min = max = TETHER_WIRE_RESP_FILE_SIZE;
            break;
        case TETHER_WIRE_RESP_ERROR:
            min = TETHER_WIRE_RESP_ERROR_MIN;
            break;
        default:
            return TETHER_WIRE_ETYPE;
    }
    if (in[2] != 0 || in[3] != 0) {
        return TETHER_WIRE_ERESERVED;
    }
    if ((in[1] & ~(unsigned)TETHER_WIRE_FLAGS_KNOWN) != 0) {
        return TETHER_WIRE_EFLAGS;
    }
    if (length < min || length > max) {
        return TETHER_WIRE_ELENGTH;
    }
    h->type = in[0];
    h->flags = in[1];
    h->length = length;
    return TETHER_WIRE_OK;
}

/* --- pair lists ---------------------------------------------------------- */

size_t tether_wire_pairs_size(const tether_wire_pair_t *pairs, size_t n)
{
    /* Bytes still allowed; every step checks before it subtracts. */
    size_t room = TETHER_WIRE_MAX_PAYLOAD - 4;
    size_t i;

    if (n > TETHER_WIRE_MAX_PAIRS) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (room < 8) {
            return 0;
        }
        room -= 8;
        if (pairs[i].key_len > room) {
            return 0;
        }
        room -= pairs[i].key_len;
        if (pairs[i].value_len > room) {
            return 0;
        }
        room -= pairs[i].value_len;
    }
    return TETHER_WIRE_MAX_PAYLOAD - room;
}

size_t tether_wire_pairs_encode(unsigned char *out, size_t cap,
                                const tether_wire_pair_t *pairs, size_t n)
{
    size_t need = tether_wire_pairs_size(pairs, n);
    size_t pos = 4;
    size_t i;

    if (need == 0 || need > cap) {
        return 0;
    }
    put_u32(out, (uint32_t)n);
    for (i = 0; i < n; i++) {
        put_u32(out + pos, pairs[i].key_len);
        pos += 4;
        if (pairs[i].key_len > 0) {
            memcpy(out + pos, pairs[i].key, pairs[i].key_len);
            pos += pairs[i].key_len;
        }
        put_u32(out + pos, pairs[i].value_len);
        pos += 4;
        if (pairs[i].value_len > 0) {
            memcpy(out + pos, pairs[i].value, pairs[i].value_len);
            pos += pairs[i].value_len;
        }
    }
    return pos;
}

/*
 * Takes one u32-length-prefixed field at in[*pos]; *left is what remains
 * of the input after *pos.
 */
static int take_field(const unsigned char *in, size_t *pos, size_t *left,
                      const char **field, uint32_t *field_len)
{
    uint32_t flen;

    if (*left < 4) {
        return TETHER_WIRE_ETRUNCATED;
    }
    flen = get_u32(in + *pos);
    *pos += 4;
    *left -= 4;
    if (flen > *left) {
        return TETHER_WIRE_ETRUNCATED;
    }
    *field = (const char *)(in + *pos);
    *field_len = flen;
    *pos += flen;
    *left -= flen;
    return TETHER_WIRE_OK;
}

size_t tether_wire_pairs_count(const unsigned char *in, size_t len)
{
    size_t count;

    if (len < 4) {
        return 0;
    }
    count = get_u32(in);
    /* More than the bytes could hold fails the decoding anyway: no need
     * to size an array for it. */
    return count <= (len - 4) / 8 ? count : (len - 4) / 8 + 1;
}

int tether_wire_pairs_decode(const unsigned char *in, size_t len,
                             tether_wire_pair_t *pairs, size_t max,
                             size_t *n)
{
    size_t pos = 4;
    size_t left;
    uint32_t count;
    uint32_t i;
    int rc;

    if (len < 4) {
        return TETHER_WIRE_ETRUNCATED;
    }
    count = get_u32(in);
    if (count > TETHER_WIRE_MAX_PAIRS || (pairs != NULL && count > max)) {
        return TETHER_WIRE_ECOUNT;
    }
    left = len - 4;
    /* Each pair takes at least its two length fields. */
    if (count > left / 8) {
        return TETHER_WIRE_ETRUNCATED;
    }
    for (i = 0; i < count; i++) {
        tether_wire_pair_t p;

        rc = take_field(in, &pos, &left, &p.key, &p.key_len);
        if (rc != TETHER_WIRE_OK) {
            return rc;
        }
        rc = take_field(in, &pos, &left, &p.value, &p.value_len);
        if (rc != TETHER_WIRE_OK) {
            return rc;
        }
        if (pairs != NULL) {
            pairs[i] = p;
        }
    }
    if (left != 0) {
        return TETHER_WIRE_ETRAILING;
    }
    *n = count;
    return TETHER_WIRE_OK;
}

/* --- fixed payloads ---------------------------------------------------- */

/* Checks that a fixed-size payload has exactly `size` bytes. */
static int exact_size(size_t len, size_t size)
{
    if (len < size) {
        return TETHER_WIRE_ETRUNCATED;
    }
    if (len > size) {
        return TETHER_WIRE_ETRAILING;
    }
    return TETHER_WIRE_OK;
}

/* The payloads that are one big-endian u32 (HELLO, BODY_WANT). */
static int u32_payload_decode(const unsigned char *in, size_t len,
                              uint32_t *value)
{
    int rc = exact_size(len, 4);

    if (rc != TETHER_WIRE_OK) {
        return rc;
    }
    *value = get_u32(in);
    return TETHER_WIRE_OK;
}

void tether_wire_hello_encode(unsigned char out[TETHER_WIRE_HELLO_SIZE],
                              uint32_t pid)
{
    put_u32(out, pid);
}

int tether_wire_hello_decode(const unsigned char *in, size_t len,
                             uint32_t *pid)
{
    return u32_payload_decode(in, len, pid);
}

void tether_wire_body_want_encode(
    unsigned char out[TETHER_WIRE_BODY_WANT_SIZE], uint32_t want)
{
    put_u32(out, want);
}

int tether_wire_body_want_decode(const unsigned char *in, size_t len,
                                 uint32_t *want)
{
    return u32_payload_decode(in, len, want);
}

void tether_wire_req_abort_encode(
    unsigned char out[TETHER_WIRE_REQ_ABORT_SIZE], uint32_t reason,
    uint32_t detail)
{
    put_u32(out, reason);
    put_u32(out + 4, detail);
}

int tether_wire_req_abort_decode(const unsigned char *in, size_t len,
                                 uint32_t *reason, uint32_t *detail)
{
    uint32_t why, what;
    int rc = exact_size(len, TETHER_WIRE_REQ_ABORT_SIZE);

    if (rc != TETHER_WIRE_OK) {
        return rc;
    }
    why = get_u32(in);
    what = get_u32(in + 4);
    if (why < TETHER_WIRE_ABORT_CLOSED || why > TETHER_WIRE_ABORT_ERROR
        || (why == TETHER_WIRE_ABORT_REJECTED
            && (what < 400 || what > 599))) {
        return TETHER_WIRE_EVALUE;
    }
    *reason = why;
    *detail = what;
    return TETHER_WIRE_OK;
}

void tether_wire_resp_file_encode(
    unsigned char out[TETHER_WIRE_RESP_FILE_SIZE], uint64_t offset,
    uint64_t length)
{
    put_u64(out, offset);
    put_u64(out + 8, length);
}

int tether_wire_resp_file_decode(const unsigned char *in, size_t len,
                                 uint64_t *offset, uint64_t *length)
{
    const uint64_t off_max = (uint64_t)INT64_MAX;
    uint64_t off, flen;
    int rc = exact_size(len, TETHER_WIRE_RESP_FILE_SIZE);

    if (rc != TETHER_WIRE_OK) {
        return rc;
    }
    off = get_u64(in);
    flen = get_u64(in + 8);
    if (off > off_max || flen > off_max - off) {
        return TETHER_WIRE_EVALUE;
    }
    *offset = off;
    *length = flen;
    return TETHER_WIRE_OK;
}

size_t tether_wire_resp_error_encode(unsigned char *out, size_t cap,
                                     uint16_t status, const char *msg,
                                     size_t msg_len)
{
    size_t max_msg = TETHER_WIRE_MAX_PAYLOAD - TETHER_WIRE_RESP_ERROR_MIN;

    if (msg_len > max_msg || cap < TETHER_WIRE_RESP_ERROR_MIN
        || msg_len > cap - TETHER_WIRE_RESP_ERROR_MIN) {
        return 0;
    }
    put_u16(out, status);
    if (msg_len > 0) {
        memcpy(out + TETHER_WIRE_RESP_ERROR_MIN, msg, msg_len);
    }
    return TETHER_WIRE_RESP_ERROR_MIN + msg_len;
}

int tether_wire_resp_error_decode(const unsigned char *in, size_t len,
                                  uint16_t *status, const char **msg,
                                  size_t *msg_len)
{
    uint16_t st;

    if (len < TETHER_WIRE_RESP_ERROR_MIN) {
        return TETHER_WIRE_ETRUNCATED;
    }
    st = get_u16(in);
    if (st < 400 || st > 599) {
        return TETHER_WIRE_EVALUE;
    }
    *status = st;
    *msg = (const char *)(in + TETHER_WIRE_RESP_ERROR_MIN);
    *msg_len = len - TETHER_WIRE_RESP_ERROR_MIN;
    return TETHER_WIRE_OK;
}
