"""The daemon-mode wire codec (module/tether_wire.c) through tether._wire.

Exact byte layouts are checked against hand-written big-endian bytes, not
against struct.pack, so a shared misunderstanding cannot hide.
"""

import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from tether import _wire as w

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "module")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus_wire")

MIB16 = 16 * 1024 * 1024

TYPES = {
    "REQ_HEAD": 1, "REQ_BODY": 2, "REQ_END": 3, "REQ_ABORT": 4,
    "HELLO": 9, "BODY_WANT": 10, "RESP_HEAD": 11, "RESP_BODY": 12, "RESP_FILE": 13,
    "RESP_END": 14, "RESP_ABORT": 15, "RESP_ERROR": 16, "GOODBYE": 17,
}
# Payload lengths each type allows: (minimum, maximum).
LENGTHS = {
    1: (4, MIB16), 2: (0, MIB16), 3: (0, 0), 4: (8, 8), 9: (4, 4),
    10: (4, 4),
    11: (4, MIB16), 12: (0, MIB16), 13: (16, 16), 14: (0, 0),
    15: (0, MIB16), 16: (2, MIB16), 17: (0, 0),
}


def u32(n):
    return n.to_bytes(4, "big")


def raw_pairs(count, *fields):
    """A pair list by hand: the count, then (length, bytes) per field."""
    out = u32(count)
    for f in fields:
        out += u32(len(f)) + f
    return out


# --- constants ---------------------------------------------------------------

def test_wire_constants_match_design():
    assert w.HEADER_SIZE == 8
    assert w.MAX_PAYLOAD == MIB16
    assert w.MAX_PAIRS == 10000
    assert w.FLAG_CLOSE == 0x01
    assert (w.BODY_WANT_SIZE, w.RESP_FILE_SIZE, w.RESP_ERROR_MIN) == (4, 16, 2)
    assert w.REQ_ABORT_SIZE == 8
    assert (w.ABORT_CLOSED, w.ABORT_TIMEOUT, w.ABORT_REJECTED,
            w.ABORT_ERROR) == (1, 2, 3, 4)
    for name, value in TYPES.items():
        assert getattr(w, name) == value, name


def test_wire_strerror_names_each_code():
    codes = [w.ETRUNCATED, w.ETYPE, w.EFLAGS, w.ERESERVED, w.ELENGTH,
             w.ECOUNT, w.ETRAILING, w.EVALUE]
    texts = [w.strerror(c) for c in codes]
    assert len(set(texts)) == len(codes)
    assert w.strerror(w.OK) == "no error"
    assert w.strerror(-999) == "unknown wire codec error"


# --- header ------------------------------------------------------------------

def test_wire_header_layout_is_big_endian_with_zero_reserved():
    assert w.encode_header(w.REQ_HEAD, 0, 0x01020304) == \
        b"\x01\x00\x00\x00\x01\x02\x03\x04"
    assert w.encode_header(w.RESP_END, w.FLAG_CLOSE, 0) == \
        b"\x0e\x01\x00\x00\x00\x00\x00\x00"
    assert w.decode_header(b"\x0b\x00\x00\x00\x00\x00\x01\x00") == \
        (w.RESP_HEAD, 0, 256)
    assert w.decode_header(b"\x10\x00\x00\x00\x00\xff\xff\xfe") == \
        (w.RESP_ERROR, 0, 0xfffffe)


@pytest.mark.parametrize("type_", sorted(LENGTHS))
def test_wire_header_round_trip_every_type_at_its_length_limits(type_):
    lo, hi = LENGTHS[type_]
    for length in {lo, hi, (lo + hi) // 2}:
        for flags in (0, w.FLAG_CLOSE):
            data = w.encode_header(type_, flags, length)
            assert len(data) == 8
            assert w.decode_header(data) == (type_, flags, length)
            assert w.decode_header(bytearray(data)) == (type_, flags, length)


@pytest.mark.parametrize("size", [0, 1, 4, 7, 9, 16])
def test_wire_header_wrong_size_rejected(size):
    data = (w.encode_header(w.REQ_END, 0, 0) + bytes(8))[:size]
    with pytest.raises(ValueError, match="truncated"):
        w.decode_header(data)


def test_wire_header_unknown_types_rejected():
    for t in range(256):
        data = w.encode_header(t, 0, LENGTHS.get(t, (0, 0))[0])
        if t in LENGTHS:
            assert w.decode_header(data)[0] == t
        else:
            with pytest.raises(ValueError, match="unknown frame type"):
                w.decode_header(data)


@pytest.mark.parametrize("byte", [2, 3])
@pytest.mark.parametrize("bit", range(8))
def test_wire_header_reserved_bits_rejected(byte, bit):
    data = bytearray(w.encode_header(w.RESP_BODY, 0, 10))
    data[byte] |= 1 << bit
    with pytest.raises(ValueError, match="reserved"):
        w.decode_header(bytes(data))


@pytest.mark.parametrize("flags", [0x02, 0x04, 0x40, 0x80, 0x03, 0xff])
def test_wire_header_undefined_flags_rejected(flags):
    with pytest.raises(ValueError, match="flags"):
        w.decode_header(w.encode_header(w.RESP_END, flags, 0))


@pytest.mark.parametrize("length", [MIB16 + 1, 0x7fffffff, 0x80000000,
                                    0xfffffff8, 0xffffffff])
@pytest.mark.parametrize("type_", [w.REQ_HEAD, w.REQ_BODY, w.RESP_BODY,
                                   w.RESP_ABORT, w.RESP_ERROR])
def test_wire_header_length_over_max_rejected(type_, length):
    with pytest.raises(ValueError, match="length"):
        w.decode_header(w.encode_header(type_, 0, length))


@pytest.mark.parametrize("type_,length", [
    (w.REQ_END, 1), (w.RESP_END, 8), (w.GOODBYE, 1),
    (w.REQ_ABORT, 0), (w.REQ_ABORT, 4), (w.REQ_ABORT, 9),
    (w.BODY_WANT, 0), (w.BODY_WANT, 3), (w.BODY_WANT, 5),
    (w.HELLO, 0), (w.HELLO, 3), (w.HELLO, 5),
    (w.RESP_FILE, 8), (w.RESP_FILE, 15), (w.RESP_FILE, 17),
    (w.RESP_ERROR, 0), (w.RESP_ERROR, 1),
    (w.REQ_HEAD, 0), (w.REQ_HEAD, 3), (w.RESP_HEAD, 2),
])
def test_wire_header_length_wrong_for_type_rejected(type_, length):
    with pytest.raises(ValueError, match="length"):
        w.decode_header(w.encode_header(type_, 0, length))


@pytest.mark.parametrize("args", [(256, 0, 0), (1, 256, 0), (1, 0, 1 << 32),
                                  (-1, 0, 0), (1, 0, -1)])
def test_wire_header_encode_out_of_range_arguments(args):
    with pytest.raises(ValueError, match="must be in"):
        w.encode_header(*args)


# --- pair lists --------------------------------------------------------------

def test_wire_pairs_layout_matches_hand_written_bytes():
    expected = (b"\x00\x00\x00\x02"
                b"\x00\x00\x00\x07:status"
                b"\x00\x00\x00\x06200 OK"
                b"\x00\x00\x00\x00"
                b"\x00\x00\x00\x03\x00\xff\x01")
    pairs = [(b":status", b"200 OK"), (b"", b"\x00\xff\x01")]
    assert w.encode_pairs(pairs) == expected
    assert w.pairs_size(pairs) == len(expected)
    assert w.decode_pairs(expected) == pairs
    assert w.count_pairs(expected) == 2


def test_wire_pairs_empty_list_is_a_zero_count():
    assert w.encode_pairs([]) == b"\x00\x00\x00\x00"
    assert w.decode_pairs(b"\x00\x00\x00\x00") == []
    assert w.decode_pairs(b"\x00\x00\x00\x00", max=0) == []


@pytest.mark.parametrize("pairs", [
    [(b"", b"")],
    [(b"", b"")] * 5,
    [(b"KEY", b"")],
    [(b"", b"value")],
    [(bytes(range(256)), bytes(range(255, -1, -1)))],
    [(b"\x00", b"\x00"), (b"\xff", b"\xff"), (b"a\x00b", b"c\xffd")],
    [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", "/caf\xe9".encode("latin-1")),
     (b"REQUEST_METHOD", b"POST")],
], ids=["empty-key-value", "five-empty", "empty-value", "empty-key",
        "all-bytes", "nul-and-ff", "duplicate-keys-in-order"])
def test_wire_pairs_round_trip(pairs):
    data = w.encode_pairs(pairs)
    assert len(data) == w.pairs_size(pairs)
    assert w.decode_pairs(data) == pairs
    assert w.decode_pairs(memoryview(data)) == pairs
    assert w.count_pairs(data) == len(pairs)


def test_wire_pairs_round_trip_random_lists():
    rng = random.Random(20240503)
    for _ in range(300):
        pairs = [(rng.randbytes(rng.choice([0, 1, 2, 7, 64, 300])),
                  rng.randbytes(rng.choice([0, 1, 3, 100, 5000])))
                 for _ in range(rng.randrange(0, 40))]
        data = w.encode_pairs(pairs)
        assert w.decode_pairs(data) == pairs


def test_wire_pairs_value_filling_the_whole_payload():
    # count (4) + key length (4) + value length (4) + value = MAX_PAYLOAD
    big = b"\xab" * (MIB16 - 12)
    data = w.encode_pairs([(b"", big)])
    assert len(data) == MIB16
    assert w.decode_pairs(data) == [(b"", big)]
    with pytest.raises(ValueError, match="cannot be encoded"):
        w.encode_pairs([(b"", big + b"x")])
    with pytest.raises(ValueError, match="cannot be encoded"):
        w.encode_pairs([(b"k", big)])
    assert w.pairs_size([(b"", big + b"x")]) == 0
    # The decoder itself is bounded by its input, not by MAX_PAYLOAD (the
    # header check is what keeps a frame within it).
    longer = raw_pairs(1, b"", big + b"x")
    assert w.decode_pairs(longer) == [(b"", big + b"x")]


def test_wire_pairs_maximum_count_round_trips():
    pairs = [(b"k%d" % i, b"") for i in range(w.MAX_PAIRS)]
    data = w.encode_pairs(pairs)
    assert w.decode_pairs(data) == pairs
    assert w.count_pairs(data) == w.MAX_PAIRS
    with pytest.raises(ValueError, match="cannot be encoded"):
        w.encode_pairs(pairs + [(b"", b"")])
    assert w.pairs_size(pairs + [(b"", b"")]) == 0


def test_wire_pairs_encode_cap_too_small_writes_nothing():
    pairs = [(b"a", b"bc")]
    size = w.pairs_size(pairs)
    assert w.encode_pairs(pairs, cap=size) == w.encode_pairs(pairs)
    assert w.encode_pairs(pairs, cap=size + 10) == w.encode_pairs(pairs)
    for cap in (0, 3, size - 1):
        with pytest.raises(ValueError, match="needs %d bytes" % size):
            w.encode_pairs(pairs, cap=cap)


@pytest.mark.parametrize("bad", [[b"ab"], [(b"a",)], [(b"a", b"b", b"c")],
                                 [(b"a", "b")], [("a", b"b")], [[b"a", b"b"]]])
def test_wire_pairs_encode_rejects_non_bytes_pairs(bad):
    with pytest.raises(TypeError):
        w.encode_pairs(bad)


VALID = w.encode_pairs([(b"SERVER_NAME", b"example.org"), (b"", b"\x00\xff"),
                        (b"X", b"")])


@pytest.mark.parametrize("cut", range(len(VALID)))
def test_wire_pairs_truncated_at_every_offset_rejected(cut):
    with pytest.raises(ValueError, match="truncated"):
        w.decode_pairs(VALID[:cut])
    with pytest.raises(ValueError, match="truncated"):
        w.count_pairs(VALID[:cut])


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00\x00", b"junk"])
def test_wire_pairs_trailing_bytes_rejected(extra):
    with pytest.raises(ValueError, match="unexpected bytes"):
        w.decode_pairs(VALID + extra)
    with pytest.raises(ValueError, match="unexpected bytes"):
        w.decode_pairs(b"\x00\x00\x00\x00" + extra)


@pytest.mark.parametrize("count", [10001, 65536, 0x7fffffff, 0xffffffff])
def test_wire_pairs_count_over_max_rejected(count):
    # Enough bytes behind it that only the count is wrong.
    data = u32(count) + bytes(8 * 10002)
    with pytest.raises(ValueError, match="too many pairs"):
        w.decode_pairs(data)
    with pytest.raises(ValueError, match="too many pairs"):
        w.count_pairs(data)


def test_wire_pairs_count_over_callers_max_rejected():
    data = w.encode_pairs([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    assert len(w.decode_pairs(data, max=3)) == 3
    assert len(w.decode_pairs(data, max=10**9)) == 3
    for mx in (0, 1, 2):
        with pytest.raises(ValueError, match="too many pairs"):
            w.decode_pairs(data, max=mx)


def test_wire_pairs_count_beyond_the_data_rejected():
    # Three pairs announced, one present.
    with pytest.raises(ValueError, match="truncated"):
        w.decode_pairs(raw_pairs(3, b"k", b"v"))
    # 10,000 announced with no data at all.
    with pytest.raises(ValueError, match="truncated"):
        w.decode_pairs(u32(10000))


def test_wire_pairs_key_length_running_past_the_end_rejected():
    data = u32(1) + u32(10) + b"short" + u32(0)
    with pytest.raises(ValueError, match="truncated"):
        w.decode_pairs(data)


def test_wire_pairs_value_length_running_past_the_end_rejected():
    data = u32(1) + u32(1) + b"k" + u32(6) + b"12345"
    with pytest.raises(ValueError, match="truncated"):
        w.decode_pairs(data)


@pytest.mark.parametrize("huge", [0xffffffff, 0xfffffffe, 0xfffffffc,
                                  0xfffffff8, 0xfffffff0, 0x80000000])
def test_wire_pairs_lengths_near_2_32_rejected(huge):
    # As a key length, as a value length, and as a second pair's key
    # length after a valid first pair: a decoder that adds before it
    # compares would wrap around and read out of bounds.
    cases = [
        u32(1) + u32(huge) + b"abcdefgh" + u32(0),
        u32(1) + u32(1) + b"k" + u32(huge) + b"abcdefgh",
        u32(2) + u32(1) + b"k" + u32(1) + b"v" + u32(huge) + bytes(16),
        u32(2) + u32(0) + u32(0) + u32(0) + u32(huge) + bytes(8),
    ]
    for data in cases:
        with pytest.raises(ValueError, match="truncated"):
            w.decode_pairs(data)
        with pytest.raises(ValueError, match="truncated"):
            w.count_pairs(data)


def test_wire_pairs_every_single_byte_corruption_is_handled():
    # Any change either still decodes to something that re-encodes to
    # the same bytes, or raises ValueError: never a crash or a misread.
    for i in range(len(VALID)):
        for v in (0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff):
            data = bytearray(VALID)
            data[i] = v
            try:
                pairs = w.decode_pairs(bytes(data))
            except ValueError:
                continue
            assert w.encode_pairs(pairs) == bytes(data)


# --- fixed payloads ----------------------------------------------------------

def test_wire_body_want_layout_and_round_trip():
    assert w.encode_body_want(65536) == b"\x00\x01\x00\x00"
    assert w.decode_body_want(b"\x01\x02\x03\x04") == 0x01020304
    for n in (0, 1, 8192, MIB16, 0xffffffff):
        assert w.decode_body_want(w.encode_body_want(n)) == n


def test_wire_body_want_malformed_rejected():
    for data in (b"", b"\x00", b"\x00\x00\x01"):
        with pytest.raises(ValueError, match="truncated"):
            w.decode_body_want(data)
    with pytest.raises(ValueError, match="unexpected bytes"):
        w.decode_body_want(b"\x00\x00\x01\x00\x00")
    for n in (-1, 1 << 32):
        with pytest.raises(ValueError, match="must be in"):
            w.encode_body_want(n)


def test_wire_req_abort_layout_and_round_trip():
    assert w.encode_req_abort(w.ABORT_REJECTED, 413) == (
        b"\x00\x00\x00\x03\x00\x00\x01\x9d")
    assert w.decode_req_abort(b"\x00\x00\x00\x04\x00\x01\x02\x03") == (
        w.ABORT_ERROR, 0x00010203)
    for reason, detail in ((w.ABORT_CLOSED, 0), (w.ABORT_TIMEOUT, 0),
                           (w.ABORT_REJECTED, 400), (w.ABORT_REJECTED, 599),
                           (w.ABORT_ERROR, 0), (w.ABORT_ERROR, 0xffffffff)):
        assert w.decode_req_abort(w.encode_req_abort(reason, detail)) == (
            reason, detail)


def test_wire_req_abort_malformed_rejected():
    for data in (b"", b"\x00\x00\x00\x01", bytes(7)):
        with pytest.raises(ValueError, match="truncated"):
            w.decode_req_abort(data)
    with pytest.raises(ValueError, match="unexpected bytes"):
        w.decode_req_abort(w.encode_req_abort(w.ABORT_CLOSED, 0) + b"\x00")
    # An unknown reason, and a refusal whose status is not an error's.
    for reason, detail in ((0, 0), (5, 0), (0xffffffff, 0),
                           (w.ABORT_REJECTED, 0), (w.ABORT_REJECTED, 399),
                           (w.ABORT_REJECTED, 600)):
        with pytest.raises(ValueError, match="out of range"):
            w.decode_req_abort(w.encode_req_abort(reason, detail))
    for args in ((-1, 0), (1 << 32, 0), (1, -1), (1, 1 << 32)):
        with pytest.raises(ValueError, match="must be in"):
            w.encode_req_abort(*args)


def test_wire_resp_file_layout_and_round_trip():
    assert w.encode_resp_file(0x0102030405060708, 0x1112131415161718) == (
        b"\x01\x02\x03\x04\x05\x06\x07\x08\x11\x12\x13\x14\x15\x16\x17\x18")
    top = (1 << 63) - 1
    for off, length in [(0, 0), (4096, 1 << 20), (top, 0), (0, top),
                        (1 << 62, (1 << 62) - 1), (top - 5, 5)]:
        assert w.decode_resp_file(w.encode_resp_file(off, length)) == \
            (off, length)


@pytest.mark.parametrize("off,length", [
    (1 << 63, 0), (0, 1 << 63), ((1 << 63) - 1, 1), (1 << 62, 1 << 62),
    ((1 << 64) - 1, (1 << 64) - 1), ((1 << 64) - 1, 1), (1, (1 << 64) - 1),
])
def test_wire_resp_file_beyond_a_signed_file_offset_rejected(off, length):
    with pytest.raises(ValueError, match="out of range"):
        w.decode_resp_file(w.encode_resp_file(off, length))


def test_wire_resp_file_wrong_size_rejected():
    data = w.encode_resp_file(1, 2)
    for cut in range(16):
        with pytest.raises(ValueError, match="truncated"):
            w.decode_resp_file(data[:cut])
    with pytest.raises(ValueError, match="unexpected bytes"):
        w.decode_resp_file(data + b"\x00")
    with pytest.raises(ValueError, match="must be in"):
        w.encode_resp_file(1 << 64, 0)


def test_wire_resp_error_layout_and_round_trip():
    assert w.encode_resp_error(504, b"timed out") == b"\x01\xf8timed out"
    assert w.decode_resp_error(b"\x01\xf7") == (503, b"")
    for status in (400, 500, 502, 599):
        for msg in (b"", b"x", "d\u00e9j\u00e0 \u2026".encode(),
                    b"\x00\xff\x00"):
            assert w.decode_resp_error(w.encode_resp_error(status, msg)) == \
                (status, msg)


@pytest.mark.parametrize("status", [0, 100, 200, 302, 399, 600, 999, 65535])
def test_wire_resp_error_non_error_status_rejected(status):
    with pytest.raises(ValueError, match="out of range"):
        w.decode_resp_error(w.encode_resp_error(status, b"msg"))


def test_wire_resp_error_malformed_and_limits():
    for data in (b"", b"\x01"):
        with pytest.raises(ValueError, match="truncated"):
            w.decode_resp_error(data)
    most = b"m" * (MIB16 - 2)
    data = w.encode_resp_error(500, most)
    assert len(data) == MIB16
    assert w.decode_resp_error(data) == (500, most)
    with pytest.raises(ValueError, match="does not fit"):
        w.encode_resp_error(500, most + b"m")
    assert w.encode_resp_error(500, b"abc", cap=5) == b"\x01\xf4abc"
    for cap in (0, 1, 2, 4):
        with pytest.raises(ValueError, match="does not fit"):
            w.encode_resp_error(500, b"abc", cap=cap)
    for status in (-1, 65536):
        with pytest.raises(ValueError, match="must be in"):
            w.encode_resp_error(status, b"")


# --- the fuzz seed corpus ----------------------------------------------------

def _decode_frame(data):
    """A whole frame: header, then exactly the payload it announces."""
    type_, _flags, length = w.decode_header(data[:8])
    payload = data[8:]
    if len(payload) != length:
        raise ValueError("frame truncated: payload is not %d bytes" % length)
    if type_ in (w.REQ_HEAD, w.RESP_HEAD):
        w.decode_pairs(payload)
    elif type_ == w.BODY_WANT:
        w.decode_body_want(payload)
    elif type_ == w.HELLO:
        w.decode_hello(payload)
    elif type_ == w.RESP_FILE:
        w.decode_resp_file(payload)
    elif type_ == w.RESP_ERROR:
        w.decode_resp_error(payload)


@pytest.mark.parametrize("name", sorted(os.listdir(CORPUS)))
def test_wire_fuzz_seed_is_what_its_name_says(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        data = f.read()
    decode = w.decode_pairs if "_pairs_" in name else _decode_frame
    if name.startswith("valid_"):
        decode(data)
    else:
        assert name.startswith("invalid_")
        with pytest.raises(ValueError):
            decode(data)


# --- the codec stays plain C99 -----------------------------------------------

def test_wire_codec_compiles_as_strict_c99_without_apache_or_python():
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    proc = subprocess.run(
        [cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Wconversion",
         "-Werror", "-fsyntax-only", "-I", MODULE,
         os.path.join(MODULE, "tether_wire.c")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(MODULE, "tether_wire.c")) as f:
        includes = {line.split()[1] for line in f if line.startswith("#include")}
    with open(os.path.join(MODULE, "tether_wire.h")) as f:
        includes |= {line.split()[1] for line in f if line.startswith("#include")}
    assert includes == {"<string.h>", '"tether_wire.h"', "<stddef.h>",
                        "<stdint.h>"}


# --- a short fuzz run --------------------------------------------------------

def _libfuzzer_clang(tmp_path):
    clang = shutil.which("clang")
    if not clang:
        pytest.skip("clang is not installed (apt-get install clang): "
                    "libFuzzer needs it")
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                     "\n{ (void)d; (void)n; return 0; }\n")
    proc = subprocess.run(
        [clang, "-fsanitize=fuzzer,address,undefined", str(probe),
         "-o", str(tmp_path / "probe")],
        capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip("clang cannot link libFuzzer here: " +
                    proc.stderr.strip().splitlines()[-1])
    return clang


@pytest.mark.slow
def test_wire_fuzz_ten_seconds_finds_nothing(tmp_path):
    clang = _libfuzzer_clang(tmp_path)
    cmake = shutil.which("cmake", path=os.path.join(sys.prefix, "bin")) \
        or shutil.which("cmake")
    if not cmake:
        pytest.skip("cmake is not installed (pip install cmake)")
    build = tmp_path / "build"
    for cmd in ([cmake, "-S", ROOT, "-B", str(build), "-DTETHER_FUZZ=ON",
                 f"-DCMAKE_C_COMPILER={clang}",
                 f"-DPython_EXECUTABLE={sys.executable}"],
                [cmake, "--build", str(build), "--target", "fuzz_wire"]):
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run(
        [str(build / "fuzz_wire"), "-max_total_time=10",
         f"-artifact_prefix={tmp_path}/", str(corpus), CORPUS],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_wire_hello_carries_pid_big_endian():
    assert w.HELLO_SIZE == 4
    assert w.encode_hello(0x01020304) == b"\x01\x02\x03\x04"
    assert w.decode_hello(w.encode_hello(4194303)) == 4194303
    frame = w.encode_header(w.HELLO, 0, 4) + w.encode_hello(77)
    assert frame == b"\x09\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x4d"
    for bad in (b"", b"\x00" * 3, b"\x00" * 5):
        with pytest.raises(ValueError):
            w.decode_hello(bad)
    with pytest.raises(ValueError):
        w.encode_hello(2 ** 32)
