"""start_response, write(), HEAD, closing the iterable, wsgi.file_wrapper."""

import http.client
import json
import os

import pytest

from harness import decode_chunked, read_head, read_until_close

CONFIG = """
WSGIScriptAlias /resp @APPS@/response_app.wsgi
WSGIScriptAlias /seq @APPS@/sequence_app.wsgi
"""

# A list of ?items= byte strings of ?size= bytes, without Content-Length;
# written into the server's copy of the apps.
SEQUENCE_APP = """\
from urllib.parse import parse_qs


def application(environ, start_response):
    q = {k: int(v[-1]) for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"s" * q["size"]] * q["items"]
"""

PATTERN = bytes(range(256)) * 256       # what response_app's CHUNK holds


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    srv = httpd_env.server(CONFIG, mpm=server_variant.mpm,
                           wsgi_mode=server_variant.wsgi_mode,
                           name="response-" + server_variant.name)
    app = os.path.join(srv.apps, "sequence_app.wsgi")
    with open(app, "w") as f:
        f.write(SEQUENCE_APP)
    os.chmod(app, 0o644)
    with srv:
        yield srv


def response_of(server, method, path):
    """(status, headers, body) of one request on a fresh connection."""
    conn = server.http()
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp, resp.read()
    finally:
        conn.close()


def body_of(raw):
    """The entity body of a RawResponse, de-chunked; asserts it is complete."""
    if raw.header("Transfer-Encoding") == "chunked":
        data, complete = decode_chunked(raw.body)
        assert complete, raw
        return data
    return raw.body


# --- start_response ----------------------------------------------------------

def test_response_status_headers_and_body(server):
    resp = server.get("/resp/hello")
    assert resp.status == 200
    assert resp.reason == "OK"
    assert resp.header("Content-Type") == "text/plain"
    assert resp.body == b"hello\n"


def test_start_response_exc_info_before_output_replaces_status_and_headers(
        server):
    resp = server.get("/resp/exc-info-replace")
    assert (resp.status, resp.reason) == (503, "Replaced Status")
    assert resp.header("X-Second") == "1"
    assert resp.header("X-First") is None
    assert resp.body == b"replaced\n"


def test_start_response_exc_info_after_output_reraises_the_original(server):
    marker = server.scratch_path("exc-info-after-sent")
    raw = server.raw_request("GET", "/resp/exc-info-after-sent?marker="
                             + marker)
    assert raw.status == 200
    assert body_of(raw) == b"partial;end\n"
    assert server.wait_for_json(marker) == {"outcome": "reraised original"}


def test_response_custom_reason_phrase_preserved(server):
    raw = server.raw_request("GET", "/resp/custom-reason")
    assert raw.status_line == "HTTP/1.1 299 Custom Reason"
    assert body_of(raw) == b"custom\n"


def test_response_latin1_header_value_sent_as_latin1_bytes(server):
    raw = server.raw_request("GET", "/resp/latin1-header")
    assert raw.status == 200, raw
    assert b"\r\nX-Latin: caf\xe9\r\n" in raw.data


def test_response_repeated_set_cookie_headers_kept_apart(server):
    raw = server.raw_request("GET", "/resp/set-cookies")
    cookies = [value for name, value in raw.headers
               if name.lower() == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2; Path=/"]


def test_response_204_has_no_body(server):
    raw = server.raw_request("GET", "/resp/no-content")
    assert raw.status == 204, raw
    assert raw.body == b""
    assert raw.header("Transfer-Encoding") is None


def test_response_empty_iterable_gives_empty_body(server):
    resp = server.get("/resp/empty-iterable")
    assert (resp.status, resp.body) == (200, b"")


def test_response_empty_items_do_not_end_the_chunked_body_early(server):
    marker = server.scratch_path("empty-items")
    raw = server.raw_request("GET", "/resp/empty-items?marker=" + marker)
    assert raw.status == 200, raw
    # An empty item must not be framed as a (terminating) zero-size chunk.
    assert body_of(raw) == b"ab"
    assert server.wait_for_json(marker)["exhausted"] is True




@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("size,items", [
    (6, 1), (8000, 2),
    (1000000, 1), (100000, 10),
], ids=["6B", "2x8000B", "1MB", "10x100kB"])
def test_response_list_body_sent_with_its_content_length(
        server, tether_only, method, size, items):
    # Everything is there when the app returns a list: Apache can count it.
    # (mod_wsgi streams each item, so no Content-Length: Tether-only.)
    status, resp, body = response_of(server, method, "/seq?size=%d&items=%d"
                                     % (size, items))
    assert status == 200
    assert resp.getheader("Content-Length") == str(size * items)
    assert resp.getheader("Transfer-Encoding") is None
    assert len(body) == (size * items if method == "GET" else 0)


def test_write_callable_output_precedes_the_iterable(server):
    resp = server.get("/resp/write")
    assert resp.status == 200
    assert resp.body == b"one;two;three\n"


# --- HEAD --------------------------------------------------------------------

def test_head_sends_headers_without_body(server):
    raw = server.raw_request("HEAD", "/resp/head")
    assert raw.status == 200, raw
    assert raw.header("Content-Length") == "10"
    assert raw.body == b""


def test_head_unsized_response_sends_no_body_and_closes_iterable(server):
    marker = server.scratch_path("head-unsized")
    raw = server.raw_request("HEAD", "/resp/head-unsized?marker=" + marker)
    assert raw.status == 200, raw
    assert raw.body == b""
    assert "yielded" in server.wait_for_json(marker)


def test_head_then_get_on_one_connection_stays_in_sync(server):
    with server.connect() as sock:
        sock.sendall(b"HEAD /resp/head HTTP/1.1\r\nHost: x\r\n\r\n")
        head, early = read_head(sock)
        assert head.status == 200, head
        sock.sendall(b"GET /resp/head HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        rest = early + read_until_close(sock)
    # Had the HEAD response carried a body, it would sit in front of this.
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:100]
    assert rest.endswith(b"\r\n\r\n0123456789")


# --- close() -----------------------------------------------------------------

def test_iterable_close_called_after_normal_end(server):
    marker = server.scratch_path("close-normal")
    resp = server.get("/resp/close-normal?marker=" + marker)
    assert resp.body == b"a;b;c\n"
    assert server.wait_for_json(marker)["exhausted"] is True


def test_iterable_close_called_when_iteration_raises(server):
    marker = server.scratch_path("close-on-error")
    mark = server.log_mark()
    raw = server.raw_request("GET", "/resp/close-on-error?marker=" + marker)
    assert raw.status == 200
    closed = server.wait_for_json(marker)
    assert (closed["yielded"], closed["exhausted"]) == (1, False)
    server.wait_for_log(r"close_on_error iterator failed", since=mark)


def test_iterable_close_failure_is_logged_and_response_complete(server):
    marker = server.scratch_path("close-raises")
    mark = server.log_mark()
    raw = server.raw_request("GET", "/resp/close-raises?marker=" + marker)
    assert raw.status == 200, raw
    assert body_of(raw) == b"body before a failing close\n"
    server.wait_for_json(marker)
    server.wait_for_log(server.client_tag + r".*RuntimeError: close\(\) "
                        r"of the iterable failed", since=mark)
    assert server.get("/resp/hello").status == 200


# --- objects of a finished request --------------------------------------------

def test_objects_kept_past_their_request_fail_cleanly(server):
    # One connection, so one Apache process serves both requests (also
    # prefork); in daemon mode the two may still reach different daemon
    # processes, so this stashes again until one finds its stash.
    conn = server.http()
    try:
        for _ in range(10):
            conn.request("GET", "/resp/stash")
            assert conn.getresponse().read() == b"stashed\n"
            conn.request("GET", "/resp/use-stale")
            resp = conn.getresponse()
            assert resp.status == 200
            outcome = json.loads(resp.read())
            if outcome["stash"] == "found":
                break
    finally:
        conn.close()
    assert outcome["stash"] == "found"
    # Reading input, or answering, for a request that is over is an error;
    # writing to its wsgi.errors may fail or just log, but never crash.
    for name in ("input.read", "input.readline", "start_response", "write"):
        assert outcome[name] != "no error", outcome
    assert server.get("/resp/hello").status == 200


# --- wsgi.file_wrapper -------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(server):
    path = os.path.join(server.scratch, "file-wrapper.bin")
    data = os.urandom(300000)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return path, data


def test_file_wrapper_sends_whole_file(server, data_file):
    path, data = data_file
    resp = server.get("/resp/file-wrapper?path=" + path)
    assert resp.status == 200
    assert resp.body == data


def test_file_wrapper_starts_at_the_files_current_offset(server, data_file):
    path, data = data_file
    resp = server.get("/resp/file-wrapper?offset=1000&path=" + path)
    assert resp.status == 200
    assert len(resp.body) == len(data) - 1000
    assert resp.body == data[1000:]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_file_wrapper_response_gets_the_files_remaining_length(
        server, data_file, method):
    path, data = data_file
    status, resp, body = response_of(server, method,
                                     "/resp/file-wrapper?offset=1000&path="
                                     + path)
    assert status == 200
    assert resp.getheader("Content-Length") == str(len(data) - 1000)
    assert resp.getheader("Transfer-Encoding") is None
    assert body == (data[1000:] if method == "GET" else b"")


def test_file_wrapper_sends_exactly_content_length_bytes(server, data_file):
    path, data = data_file
    resp = server.get("/resp/file-wrapper?offset=1000&length=5000&path="
                      + path)
    assert resp.status == 200
    assert resp.header("Content-Length") == "5000"
    assert resp.body == data[1000:6000]


def test_file_wrapper_content_length_at_end_of_file(server, data_file):
    path, data = data_file
    resp = server.get("/resp/file-wrapper?offset=%d&length=100&path=%s"
                      % (len(data) - 100, path))
    assert resp.body == data[-100:]


def test_file_wrapper_content_length_beyond_end_of_file_is_incomplete(
        server, data_file, httpd_env):
    path, data = data_file
    conn = server.http()
    try:
        conn.request("GET", "/resp/file-wrapper?offset=%d&length=500&path=%s"
                     % (len(data) - 100, path))
        try:
            resp = conn.getresponse()
        except http.client.RemoteDisconnected:
            # mod_wsgi gives up before the headers; we send what there is.
            assert httpd_env.reference
            return
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    assert info.value.partial == data[-100:]


def test_file_wrapper_real_file_is_sent_from_its_descriptor(server, data_file):
    # A file with a descriptor goes to Apache as a file bucket (sendfile,
    # or Apache's own reads): Python never reads it.
    path, data = data_file
    marker = server.scratch_path("spy")
    resp = server.get("/resp/file-wrapper-spy?path=%s&marker=%s"
                      % (path, marker))
    assert resp.status == 200
    assert resp.body == data
    assert server.wait_for_json(marker)["reads"] == []


def test_file_wrapper_without_fileno_is_read_in_python(server, data_file):
    # The control of the test above: the same file with its descriptor
    # hidden must be iterated in Python, and the spy sees those reads.
    path, data = data_file
    marker = server.scratch_path("spy-nofileno")
    resp = server.get("/resp/file-wrapper-spy?no_fileno=1&path=%s&marker=%s"
                      % (path, marker))
    assert resp.status == 200
    assert resp.body == data
    assert server.wait_for_json(marker)["reads"], "no read was recorded"


def test_file_wrapper_filelike_object_read_in_blocks_and_closed(server):
    marker = server.scratch_path("filelike")
    resp = server.get("/resp/file-wrapper-filelike?size=20000&block=4096"
                      "&marker=" + marker)
    assert resp.status == 200
    assert resp.body == PATTERN[:20000]
    sizes = server.wait_for_json(marker)["read_sizes"]
    # Read block by block, never all at once.
    assert sizes and all(0 < size <= 4096 for size in sizes), sizes
