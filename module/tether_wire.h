/*
 * The frames spoken between an Apache child and a daemon process over a
 * Unix stream socket (daemon mode).  Pure encoding and decoding: no APR,
 * no Apache, no Python, no I/O and no allocation, so it is built alone for
 * the unit tests (tether._wire) and the fuzzer (fuzz_wire.c).
 *
 * Every frame is an 8-byte header followed by `length` payload bytes:
 *
 *   byte 0      type (tether_wire_type_e)
 *   byte 1      flags (tether_wire_flag_e)
 *   bytes 2-3   reserved, zero
 *   bytes 4-7   payload length, unsigned 32-bit big-endian,
 *               at most TETHER_WIRE_MAX_PAYLOAD
 *
 * A pair list (REQ_HEAD, RESP_HEAD) is a big-endian u32 count followed by
 * count times (u32 key length, key bytes, u32 value length, value bytes).
 * Keys and values are arbitrary bytes; decoded pairs point into the input
 * buffer and are NOT NUL-terminated.  In REQ_HEAD, keys starting with ':'
 * are the protocol's, not the environ's (":script_mtime", ":log_level");
 * in RESP_HEAD the first pair is ":status".
 *
 * Decoders trust nothing: every length is checked against what remains,
 * and they return 0 or one of the negative TETHER_WIRE_E* codes below.
 */
#ifndef TETHER_WIRE_H
#define TETHER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TETHER_WIRE_HEADER_SIZE 8
#define TETHER_WIRE_MAX_PAYLOAD (16u * 1024u * 1024u)
#define TETHER_WIRE_MAX_PAIRS 10000u

/* Payload sizes of the fixed-layout frames. */
#define TETHER_WIRE_HELLO_SIZE 4
#define TETHER_WIRE_BODY_WANT_SIZE 4
#define TETHER_WIRE_REQ_ABORT_SIZE 8
#define TETHER_WIRE_RESP_FILE_SIZE 16
#define TETHER_WIRE_RESP_ERROR_MIN 2

/* Frame types; A = Apache child, D = daemon. */
typedef enum {
    TETHER_WIRE_REQ_HEAD = 1,       /* A->D pair list: the environ */
    TETHER_WIRE_REQ_BODY = 2,       /* A->D raw body bytes */
    TETHER_WIRE_REQ_END = 3,        /* A->D empty: body complete */
    TETHER_WIRE_REQ_ABORT = 4,      /* A->D u32 reason, u32 detail: the
                                     * body could not be read */
    TETHER_WIRE_HELLO = 9,          /* D->A u32: the daemon's pid, sent
                                     * once when it accepts a connection */
    TETHER_WIRE_BODY_WANT = 10,     /* D->A u32: bytes wanted now */
    TETHER_WIRE_RESP_HEAD = 11,     /* D->A pair list, ":status" first */
    TETHER_WIRE_RESP_BODY = 12,     /* D->A raw body bytes */
    TETHER_WIRE_RESP_FILE = 13,     /* D->A u64 offset, u64 length + fd */
    TETHER_WIRE_RESP_END = 14,      /* D->A empty: response complete */
    TETHER_WIRE_RESP_ABORT = 15,    /* D->A UTF-8 reason */
    TETHER_WIRE_RESP_ERROR = 16,    /* D->A u16 status + UTF-8 message */
    TETHER_WIRE_GOODBYE = 17        /* D->A empty: sent on an idle
                                     * connection the daemon hangs up;
                                     * whatever Apache sent on it after
                                     * its last response was not read */
} tether_wire_type_e;

/* Header flag bits.  Bits not listed here make a header invalid. */
typedef enum {
    /* The daemon will not take another request on this connection.
     * Meant for RESP_END (and RESP_ERROR, RESP_ABORT); the decoder
     * accepts it on any type. */
    TETHER_WIRE_FLAG_CLOSE = 0x01,
    TETHER_WIRE_FLAGS_KNOWN = TETHER_WIRE_FLAG_CLOSE
} tether_wire_flag_e;

/* Results of the decoders: 0 or one of these. */
typedef enum {
    TETHER_WIRE_OK = 0,
    TETHER_WIRE_ETRUNCATED = -1,    /* input ends inside a field */
    TETHER_WIRE_ETYPE = -2,         /* unknown frame type */
    TETHER_WIRE_EFLAGS = -3,        /* undefined flag bits set */
    TETHER_WIRE_ERESERVED = -4,     /* reserved header bytes not zero */
    TETHER_WIRE_ELENGTH = -5,       /* payload length over the maximum or
                                     * wrong for the frame type */
    TETHER_WIRE_ECOUNT = -6,        /* more pairs than allowed */
    TETHER_WIRE_ETRAILING = -7,     /* bytes left after the last field */
    TETHER_WIRE_EVALUE = -8         /* a number out of its range */
} tether_wire_status_e;

typedef struct {
    uint8_t type;
    uint8_t flags;
    uint32_t length;
} tether_wire_header_t;

typedef struct {
    const char *key;
    uint32_t key_len;
    const char *value;
    uint32_t value_len;
} tether_wire_pair_t;

/* A short English description of a TETHER_WIRE_E* code, for log lines. */
const char *tether_wire_strerror(int rc);

/* --- header ------------------------------------------------------------ */

/* Writes a header; does not check its arguments (the decoder does). */
void tether_wire_header_encode(unsigned char out[TETHER_WIRE_HEADER_SIZE],
                               uint8_t type, uint8_t flags, uint32_t length);

/*
 * Reads a header.  Rejects unknown types (ETYPE), undefined flag bits
 * (EFLAGS), non-zero reserved bytes (ERESERVED) and a length above
 * TETHER_WIRE_MAX_PAYLOAD or not allowed for the type (ELENGTH): REQ_END,
 * and RESP_END are empty, REQ_ABORT is 8 bytes, BODY_WANT 4, RESP_FILE 16,
 * RESP_ERROR at least 2, REQ_HEAD and RESP_HEAD at least 4 (the count).
 * *h is filled only on success.
 */
int tether_wire_header_decode(
    const unsigned char in[TETHER_WIRE_HEADER_SIZE], tether_wire_header_t *h);

/* --- pair lists (REQ_HEAD, RESP_HEAD) ----------------------------------- */

/*
 * Bytes needed to encode the n pairs; 0 when the list cannot be sent:
 * more than TETHER_WIRE_MAX_PAIRS pairs or more than TETHER_WIRE_MAX_PAYLOAD
 * bytes (a valid encoding is never shorter than 4 bytes).  pairs may be
 * NULL when n is 0.
 */
size_t tether_wire_pairs_size(const tether_wire_pair_t *pairs, size_t n);

/*
 * Encodes the n pairs into out; returns the bytes written, or 0 if cap is
 * too small or tether_wire_pairs_size() is 0.
 */
size_t tether_wire_pairs_encode(unsigned char *out, size_t cap,
                                const tether_wire_pair_t *pairs, size_t n);

/*
 * The count a len-byte pair list declares (0 if it is too short to hold
 * one; capped at one more than its bytes could hold), unchecked
 * otherwise: to size the array for a single decoding pass, which then
 * checks it against TETHER_WIRE_MAX_PAIRS and the bytes.
 */
size_t tether_wire_pairs_count(const unsigned char *in, size_t len);

/*
 * Decodes the len-byte pair list at in into pairs[0..*n), pointing into
 * in.  Fails with ECOUNT if the count is above TETHER_WIRE_MAX_PAIRS or
 * above max, ETRUNCATED if a length runs past the end and ETRAILING if
 * bytes follow the last pair.  With pairs == NULL the list is only
 * validated and counted (max is ignored), to size an array first.
 * *n is set only on success; on failure pairs[] may be partly written.
 */
int tether_wire_pairs_decode(const unsigned char *in, size_t len,
                             tether_wire_pair_t *pairs, size_t max,
                             size_t *n);

/* --- fixed payloads ----------------------------------------------------- */

/* HELLO: the pid of the daemon process that accepted the connection. */
void tether_wire_hello_encode(unsigned char out[TETHER_WIRE_HELLO_SIZE],
                              uint32_t pid);
int tether_wire_hello_decode(const unsigned char *in, size_t len,
                             uint32_t *pid);

/* BODY_WANT: the most bytes the daemon wants in the next REQ_BODY. */
void tether_wire_body_want_encode(
    unsigned char out[TETHER_WIRE_BODY_WANT_SIZE], uint32_t want);
int tether_wire_body_want_decode(const unsigned char *in, size_t len,
                                 uint32_t *want);

/* Why Apache's side could not read a request body (REQ_ABORT). */
typedef enum {
    TETHER_WIRE_ABORT_CLOSED = 1,   /* the client closed the connection
                                     * before the end of the body */
    TETHER_WIRE_ABORT_TIMEOUT = 2,  /* the client sent nothing for longer
                                     * than Apache's Timeout */
    TETHER_WIRE_ABORT_REJECTED = 3, /* Apache refused the body and answered
                                     * the client; detail: the HTTP status
                                     * it sent (400-599) */
    TETHER_WIRE_ABORT_ERROR = 4     /* anything else; detail: the
                                     * apr_status_t, 0 if none */
} tether_wire_abort_e;

/*
 * REQ_ABORT: a reason and its detail.  Decoding fails with EVALUE for an
 * unknown reason, or a REJECTED whose status is outside 400-599.
 */
void tether_wire_req_abort_encode(
    unsigned char out[TETHER_WIRE_REQ_ABORT_SIZE], uint32_t reason,
    uint32_t detail);
int tether_wire_req_abort_decode(const unsigned char *in, size_t len,
                                 uint32_t *reason, uint32_t *detail);

/*
 * RESP_FILE: a range of the file whose descriptor rides along.  Decoding
 * fails with EVALUE unless offset, length and offset + length all fit in
 * a signed 64-bit file offset (apr_off_t, off_t).
 */
void tether_wire_resp_file_encode(
    unsigned char out[TETHER_WIRE_RESP_FILE_SIZE], uint64_t offset,
    uint64_t length);
int tether_wire_resp_file_decode(const unsigned char *in, size_t len,
                                 uint64_t *offset, uint64_t *length);

/*
 * RESP_ERROR: an HTTP error status (400-599) and a message (not
 * NUL-terminated when decoded; it points into in).  Encoding returns the
 * bytes written, 0 if cap is too small or the payload would be over
 * TETHER_WIRE_MAX_PAYLOAD; it does not check the status (the decoder
 * rejects one outside 400-599 with EVALUE).
 */
size_t tether_wire_resp_error_encode(unsigned char *out, size_t cap,
                                     uint16_t status, const char *msg,
                                     size_t msg_len);
int tether_wire_resp_error_decode(const unsigned char *in, size_t len,
                                  uint16_t *status, const char **msg,
                                  size_t *msg_len);

#ifdef __cplusplus
}
#endif

#endif /* TETHER_WIRE_H */
