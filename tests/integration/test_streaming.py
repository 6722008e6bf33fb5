"""Streaming: output reaches the client as the app produces it, a client that
leaves ends the iteration, and large bodies pass in bounded memory."""

import hashlib
import json
import os
import socket
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

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


@pytest.fixture(scope="module")
def server(httpd_env, mpm):
    with httpd_env.server(CONFIG, mpm=mpm, name="streaming-" + mpm) as srv:
        yield srv


@pytest.fixture(scope="module")
def one_child_server(httpd_env):
    with httpd_env.server(CONFIG, mpm="event", mpm_settings=ONE_CHILD,
                          name="streaming-memory") as srv:
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
    resp = server.get("/resp/rss")
    assert resp.status == 200, resp
    return resp.json()


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
    total, digest, pid = read_big_response(server, 100)
    after = rss_of(server)
    assert total == 100 * 1024 * 1024
    assert digest == expected_sha(100)
    assert int(pid) == before["pid"] == after["pid"], \
        "a different child served the requests; cannot compare memory"
    growth = after["maxrss_kb"] - before["maxrss_kb"]
    assert growth < MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the child grew by %d KiB streaming 100 MiB" % growth


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
    result = upload_chunked(server, "/upload/digest", blocks, block)
    sha = hashlib.sha256()
    for _ in range(blocks):
        sha.update(block)
    assert "error" not in result, result
    assert result["count"] == 50 * 1024 * 1024
    assert result["sha256"] == sha.hexdigest()
    assert result["pid"] == warm["pid"], \
        "a different child served the requests; cannot compare memory"
    growth = result["maxrss_after_kb"] - warm["maxrss_after_kb"]
    assert growth < MEMORY_GROWTH_LIMIT_KB, \
        "peak RSS of the child grew by %d KiB reading a 50 MiB upload" % growth


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
