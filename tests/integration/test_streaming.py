"""Streaming: output reaches the client as the app produces it, a client that
leaves ends the iteration, and large bodies pass in bounded memory.

In daemon mode the bounds hold for the daemon process that runs the app and
for the Apache child that relays between it and the client."""

import hashlib
import json
import os
import socket
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from harness import decode_chunked, encode_chunked, read_head, \
    read_until_close

CONFIG = """
WSGIScriptAlias /resp @APPS@/response_app.wsgi
WSGIScriptAlias /upload @APPS@/input_app.wsgi
<Location /upload>
    WSGIChunkedRequest On
</Location>
"""

# One child process, so successive requests are served by the same process
# and its peak RSS can be compared across them.
ONE_CHILD = """\
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 1
    ThreadsPerChild 8
    ThreadLimit 8
    MinSpareThreads 1
    MaxSpareThreads 8
    MaxRequestWorkers 8
    MaxConnectionsPerChild 0
</IfModule>"""

CHUNK = bytes(range(256)) * 256         # response_app's 64 KiB item
MEMORY_GROWTH_LIMIT_KB = 10 * 1024
GIB_MEMORY_GROWTH_LIMIT_KB = 20 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="streaming-" + server_variant.name) as srv:
        yield srv


def start_one_child(httpd_env, wsgi_mode, name, extra=""):
    """One Apache child of 8 threads; in daemon mode one daemon process of
    8 threads, so successive requests meet the same processes."""
    return httpd_env.server(CONFIG + extra, mpm="event",
                            mpm_settings=ONE_CHILD,
                            wsgi_mode=wsgi_mode, daemon_processes=1,
                            daemon_threads=8, name=name)


@pytest.fixture(scope="module", params=[
    pytest.param(harness.ServerVariant("event", "embedded"), id="event"),
    pytest.param(harness.ServerVariant("event", "daemon"), id="event-daemon",
                 marks=pytest.mark.daemon)])
def one_child_server(httpd_env, request):
    with start_one_child(httpd_env, request.param.wsgi_mode,
                         "streaming-memory-" + request.param.name) as srv:
        yield srv


@pytest.fixture(scope="module")
def daemon_server(httpd_env):
    """The one-child server in daemon mode, for the daemon-only tests;
    with sendfile, whose reads of the file /proc/<pid>/io counts (it does
    not count mmap, Apache's way when EnableSendfile is Off)."""
    with start_one_child(httpd_env, "daemon", "streaming-daemon",
                         "EnableSendfile On\n") as srv:
        yield srv


class ChunkedReader:
    """Reads a chunked response body off a raw socket as it arrives."""

    def __init__(self, sock, already=b""):
        self.sock = sock
        self.buf = already

    def read_until(self, needle):
        """Receives until the de-chunked body so far contains `needle`."""
        while True:
            data, _ = decode_chunked(self.buf)
            if needle in data:
                return data
            more = self.sock.recv(65536)
            if not more:
                raise AssertionError("connection closed before %r arrived; "
                                     "got %r" % (needle, self.buf))
            self.buf += more

    def read_rest(self):
        self.buf += read_until_close(self.sock)
        return decode_chunked(self.buf)


def get_streaming(server, path):
    """Sends a GET on a raw socket; returns (socket, ChunkedReader)."""
    sock = server.connect()
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n" % path).encode())
        head, rest = read_head(sock)
        assert head.status == 200, head
        assert head.header("Transfer-Encoding") == "chunked", head
    except BaseException:
        sock.close()
        raise
    return sock, ChunkedReader(sock, rest)


def release(path):
    with open(path, "w") as f:
        f.write("go")


# --- flushing ----------------------------------------------------------------

def test_streaming_each_item_reaches_client_before_the_next_is_made(server):
    # The app yields "first", then waits until the test has received it
    # before it yields "second": without a flush per item this would stall.
    gate = server.scratch_path("release")
    marker = server.scratch_path("stream-closed")
    sock, reader = get_streaming(server, "/resp/stream?release=%s&marker=%s"
                                 % (gate, marker))
    with sock:
        assert reader.read_until(b"first\n") == b"first\n"
        release(gate)
        data, complete = reader.read_rest()
    assert (data, complete) == (b"first\nsecond\n", True)
    assert server.wait_for_json(marker)["exhausted"] is True


def test_streaming_write_callable_output_reaches_client_before_return(server):
    gate = server.scratch_path("release")
    sock, reader = get_streaming(server, "/resp/stream-write?release=" + gate)
    with sock:
        assert reader.read_until(b"first\n") == b"first\n"
        release(gate)
        data, complete = reader.read_rest()
    assert (data, complete) == (b"first\nsecond\n", True)


def test_streaming_blocked_request_does_not_hold_up_others(one_child_server):
    # One child process: the second request must be served by it while the
    # first one's app is still waiting inside its iterable.
    server = one_child_server
    gate = server.scratch_path("release")
    sock, reader = get_streaming(server, "/resp/stream?release=" + gate)
    with sock:
        reader.read_until(b"first\n")
        resp = server.get("/resp/hello")
        assert (resp.status, resp.body) == (200, b"hello\n")
        release(gate)
        data, complete = reader.read_rest()
    assert (data, complete) == (b"first\nsecond\n", True)


# --- client disconnect -------------------------------------------------------

def test_streaming_client_disconnect_stops_iteration_and_closes_iterable(
        server):
    marker = server.scratch_path("disconnect-closed")
    sock, reader = get_streaming(server, "/resp/close-on-disconnect?marker="
                                 + marker)
    with sock:
        reader.read_until(CHUNK)
        # Reset rather than a polite FIN: the server's next write fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    closed = server.wait_for_json(marker, deadline=60)
    assert closed["exhausted"] is False
    assert closed["yielded"] < 256 * 1024
    resp = server.get("/resp/hello")
    assert (resp.status, resp.body) == (200, b"hello\n")


# --- large bodies in bounded memory ------------------------------------------

def rss_of(server):
    """The pid and peak RSS of the process that runs the app."""
    resp = server.get("/resp/rss")
    assert resp.status == 200, resp
    return resp.json()


def children_peaks(server):
    """{pid: peak RSS in KiB} of the Apache children that serve HTTP (in
    daemon mode: that relay between the clients and the daemon)."""
    peaks = {pid: harness.proc_status_kb(pid, "VmHWM")
             for pid in server.worker_pids()}
    peaks = {pid: kb for pid, kb in peaks.items() if kb is not None}
    if not peaks:
        pytest.skip("cannot read VmHWM in /proc/<pid>/status of the Apache "
                    "children %s" % server.worker_pids())
    return peaks


def assert_children_bounded(server, before, what, limit_kb):
    """Every Apache child of `before` (children_peaks) grew by < limit_kb.

    Under AddressSanitizer freed blocks wait in its quarantine before they
    are reused, so the quarantine (and some slack) is allowed on top."""
    if harness.sanitize_enabled():
        limit_kb += (harness.SANITIZE_QUARANTINE_MB + 2) * 1024
    after = children_peaks(server)
    common = sorted(set(before) & set(after))
    assert common, "the Apache children were replaced (%s, then %s): " \
        "cannot compare memory" % (sorted(before), sorted(after))
    growth = {pid: after[pid] - before[pid] for pid in common}
    assert max(growth.values()) < limit_kb, \
        "peak RSS of Apache children grew by %s KiB %s" % (growth, what)


def test_daemon_large_item_relayed_in_pieces(daemon_server):
    """A 12 MiB item travels as one 12 MiB frame; the Apache child reads
    and passes it on in pieces, never holding it whole."""
    server = daemon_server
    assert server.get("/resp/big-item?mb=1").status == 200
    before = children_peaks(server)
    for _ in range(3):
        resp = server.get("/resp/big-item?mb=12")
        assert resp.status == 200
        assert resp.body == bytes(range(256)) * (12 * 4096)
    assert_children_bounded(server, before, "relaying 12 MiB items",
                            4 * 1024)


def read_big_response(server, megabytes):
    """Streams /resp/big through http.client 64 KiB at a time.

    Returns (bytes read, sha256 hex, the X-Pid header)."""
    conn = server.http()
    try:
        conn.request("GET", "/resp/big?mb=%d" % megabytes)
        resp = conn.getresponse()
        assert resp.status == 200
        sha = hashlib.sha256()
        total = 0
        while True:
            block = resp.read(65536)
            if not block:
                break
            total += len(block)
            sha.update(block)
        return total, sha.hexdigest(), resp.getheader("X-Pid")
    finally:
        conn.close()


def expected_sha(megabytes):
    sha = hashlib.sha256()
    for _ in range(megabytes * 16):
        sha.update(CHUNK)
    return sha.hexdigest()


@pytest.mark.slow
def test_streaming_100mb_response_in_bounded_memory(one_child_server):
    server = one_child_server
    read_big_response(server, 2)            # warm up: imports, buffers
    before = rss_of(server)
    children_before = children_peaks(server)
    total, digest, pid = read_big_response(server, 100)
    after = rss_of(server)
    assert total == 100 * 1024 * 1024
    assert digest == expected_sha(100)
    assert int(pid) == before["pid"] == after["pid"], \
        "a different process served the requests; cannot compare memory"
    growth = after["maxrss_kb"] - before["maxrss_kb"]
    assert growth < MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the app's process grew by %d KiB streaming 100 MiB" \
        % growth
    assert_children_bounded(server, children_before, "streaming 100 MiB",
                            MEMORY_GROWTH_LIMIT_KB)


def upload_chunked(server, path, blocks, block):
    """POSTs `blocks` copies of `block` as a chunked body; returns the JSON."""
    with server.connect() as sock:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Transfer-Encoding: chunked\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Connection: close\r\n\r\n" % path).encode())
        framed = b"%x\r\n" % len(block) + block + b"\r\n"
        for _ in range(blocks):
            sock.sendall(framed)
        sock.sendall(b"0\r\n\r\n")
        head, rest = read_head(sock)
        body = rest + read_until_close(sock)
    assert head.status == 200, (head, body[:500])
    if head.header("Transfer-Encoding") == "chunked":
        body, complete = decode_chunked(body)
        assert complete
    return json.loads(body)


@pytest.mark.slow
def test_streaming_50mb_chunked_upload_in_bounded_memory(one_child_server):
    server = one_child_server
    block = os.urandom(64 * 1024)
    blocks = 50 * 16
    warm = upload_chunked(server, "/upload/digest", 4, block)
    assert warm["count"] == 4 * len(block)
    children_before = children_peaks(server)
    result = upload_chunked(server, "/upload/digest", blocks, block)
    sha = hashlib.sha256()
    for _ in range(blocks):
        sha.update(block)
    assert "error" not in result, result
    assert result["count"] == 50 * 1024 * 1024
    assert result["sha256"] == sha.hexdigest()
    assert result["pid"] == warm["pid"], \
        "a different process served the requests; cannot compare memory"
    growth = result["maxrss_after_kb"] - warm["maxrss_after_kb"]
    assert growth < MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the app's process grew by %d KiB reading a 50 MiB " \
        "upload" % growth
    assert_children_bounded(server, children_before,
                            "relaying a 50 MiB upload", MEMORY_GROWTH_LIMIT_KB)


def test_streaming_chunked_upload_round_trip(server):
    pieces = [os.urandom(n) for n in (1, 100, 65536, 70000, 3)]
    raw = server.raw_request(
        "POST", "/upload/digest",
        headers=[("Transfer-Encoding", "chunked")],
        body=encode_chunked(pieces))
    assert raw.status == 200, raw
    body = raw.body
    if raw.header("Transfer-Encoding") == "chunked":
        body, _ = decode_chunked(body)
    result = json.loads(body)
    assert result["count"] == sum(map(len, pieces))
    assert result["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_streaming_concurrent_uploads_keep_their_own_bodies(server):
    def one(i):
        body = os.urandom(256 * 1024 + i)
        resp = server.post("/upload/digest", body,
                           headers={"Content-Type":
                                    "application/octet-stream"})
        assert resp.status == 200, resp
        result = resp.json()
        return (result["count"], result["sha256"]), \
            (len(body), hashlib.sha256(body).hexdigest())

    with ThreadPoolExecutor(max_workers=6) as pool:
        for got, sent in pool.map(one, range(24)):
            assert got == sent


# --- daemon mode: wsgi.file_wrapper and 1 GiB bodies --------------------------

@pytest.fixture(scope="module")
def big_file(daemon_server):
    """A 20 MiB file of random bytes the daemon can read."""
    path = os.path.join(daemon_server.scratch, "file-wrapper-20m.bin")
    data = os.urandom(20 * MIB)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return path, data


@pytest.mark.daemon
def test_daemon_file_wrapper_delivers_a_real_file(daemon_server, big_file):
    # The daemon passes the open file to the Apache child, which sends it
    # from the file's offset (the app's seek) for Content-Length bytes.
    server = daemon_server
    path, data = big_file
    resp = server.get("/resp/file-wrapper?path=" + path)
    assert resp.status == 200
    assert len(resp.body) == len(data)
    assert resp.body == data
    resp = server.get("/resp/file-wrapper?offset=12345&path=" + path)
    assert resp.status == 200
    assert resp.body == data[12345:]
    length = 10 * MIB + 7
    resp = server.get("/resp/file-wrapper?offset=4097&length=%d&path=%s"
                      % (length, path))
    assert resp.status == 200
    assert resp.header("Content-Length") == str(length)
    assert resp.body == data[4097:4097 + length]


def io_counters(pids):
    """{pid: /proc/<pid>/io} for pids; skips the test if one is unreadable."""
    counters = {}
    for pid in pids:
        try:
            counters[pid] = harness.proc_io(pid)
        except OSError as exc:
            pytest.skip("cannot read /proc/%d/io (%s): no I/O accounting "
                        "to tell who moved the bytes" % (pid, exc))
    return counters


def io_growth(before, after, field):
    return sum(after[pid][field] - before[pid][field]
               for pid in before if pid in after)


@pytest.mark.daemon
def test_daemon_file_wrapper_bytes_sent_by_apache_not_by_the_daemon(
        daemon_server, big_file, tether_only):
    """/proc/<pid>/io counts read/write/sendfile, not send/recvmsg on
    sockets: a daemon that streamed the file itself would read() it (in
    Python or in C) and its rchar would grow by the file's size; an Apache
    child that sends the file itself reads it (sendfile or read) and its
    rchar grows by that much, while relaying bytes it recv()s from the
    daemon does not (checked too, with a generator's response)."""
    server = daemon_server
    path, data = big_file
    daemons, workers = server.daemon_pids(), server.worker_pids()
    assert daemons and workers, (daemons, workers)
    size = len(data)
    server.get("/resp/hello")               # connections, buffers

    # Control: 20 MiB the daemon makes itself pass through the relay without
    # showing up as data the Apache child read.
    d0, w0 = io_counters(daemons), io_counters(workers)
    total, _, _ = read_big_response(server, 20)
    d1, w1 = io_counters(daemons), io_counters(workers)
    assert total == size
    relay_read = io_growth(w0, w1, "rchar")

    resp = server.get("/resp/file-wrapper?path=" + path)
    d2, w2 = io_counters(daemons), io_counters(workers)
    assert resp.status == 200 and resp.body == data
    daemon_read = io_growth(d1, d2, "rchar")
    daemon_written = io_growth(d1, d2, "wchar")
    apache_read = io_growth(w1, w2, "rchar")
    apache_written = io_growth(w1, w2, "wchar")
    assert daemon_read < MIB and daemon_written < MIB, \
        "the daemon read %d and wrote %d bytes serving a %d-byte file" \
        % (daemon_read, daemon_written, size)
    assert apache_written >= size, \
        "the Apache children wrote only %d bytes" % apache_written
    assert relay_read < MIB, \
        "relayed bytes count as read (%d): rchar cannot tell who read the " \
        "file; this test needs another measure" % relay_read
    assert apache_read >= size, \
        "the Apache children read only %d bytes: the file was not sent " \
        "from its descriptor" % apache_read


def upload_with_length(server, path, blocks, block_size):
    """POSTs blocks × block_size bytes with a Content-Length, sent block by
    block (each block differs); returns (the app's JSON, sha256 sent)."""
    base = bytearray(os.urandom(block_size))
    sha = hashlib.sha256()
    with server.connect() as sock:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Length: %d\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Connection: close\r\n\r\n"
                      % (path, blocks * block_size)).encode())
        try:
            for i in range(blocks):
                base[:8] = struct.pack(">Q", i)
                sha.update(base)
                sock.sendall(base)
        except (BrokenPipeError, ConnectionResetError):
            pass                            # the response says why
        head, rest = read_head(sock)
        body = rest + read_until_close(sock)
    assert head.status == 200, (head, body[:500])
    if head.header("Transfer-Encoding") == "chunked":
        body, complete = decode_chunked(body)
        assert complete
    return json.loads(body), sha.hexdigest()


@pytest.mark.slow
@pytest.mark.daemon
def test_daemon_1gib_upload_in_bounded_memory(daemon_server):
    server = daemon_server
    warm, _ = upload_with_length(server, "/upload/digest", 8, MIB)
    assert warm["count"] == 8 * MIB
    children_before = children_peaks(server)
    result, sent_sha = upload_with_length(server, "/upload/digest", 1024, MIB)
    assert "error" not in result, result
    assert result["count"] == 1024 * MIB
    assert result["sha256"] == sent_sha
    assert result["pid"] == warm["pid"], \
        "a different daemon process served the requests"
    assert result["pid"] in server.daemon_pids()
    growth = result["maxrss_after_kb"] - warm["maxrss_after_kb"]
    assert growth < GIB_MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the daemon grew by %d KiB reading a 1 GiB upload" \
        % growth
    assert_children_bounded(server, children_before,
                            "relaying a 1 GiB upload",
                            GIB_MEMORY_GROWTH_LIMIT_KB)


@pytest.mark.slow
@pytest.mark.daemon
def test_daemon_1gib_download_in_bounded_memory(daemon_server):
    server = daemon_server
    read_big_response(server, 8)            # warm up
    before = rss_of(server)
    children_before = children_peaks(server)
    total, digest, pid = read_big_response(server, 1024)
    after = rss_of(server)
    assert total == 1024 * MIB
    assert digest == expected_sha(1024)
    assert int(pid) == before["pid"] == after["pid"], \
        "a different daemon process served the requests"
    assert int(pid) in server.daemon_pids()
    growth = after["maxrss_kb"] - before["maxrss_kb"]
    assert growth < GIB_MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the daemon grew by %d KiB streaming 1 GiB" % growth
    assert_children_bounded(server, children_before, "relaying 1 GiB",
                            GIB_MEMORY_GROWTH_LIMIT_KB)
