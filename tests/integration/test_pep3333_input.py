"""wsgi.input: reads, lines, iteration; Content-Length and chunked bodies."""

import json
import os
import socket
import time

import pytest

import harness

from harness import RawResponse, decode_chunked, encode_chunked, read_head, \
    read_until_close

CONFIG = """
WSGIScriptAlias /in @APPS@/input_app.wsgi
WSGIScriptAlias /chunked @APPS@/input_app.wsgi
<Location /chunked>
    WSGIChunkedRequest On
</Location>
WSGIScriptAlias /limited @APPS@/input_app.wsgi
<Location /limited>
    LimitRequestBody 100
</Location>
WSGIScriptAlias /chunked-limited @APPS@/input_app.wsgi
<Location /chunked-limited>
    WSGIChunkedRequest On
    LimitRequestBody 100
</Location>
"""

LINES_BODY = b"one\ntwo\n\nthree\nfour\nlast without newline"


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="input-" + server_variant.name) as srv:
        yield srv


def post(server, path, body):
    resp = server.post(path, body,
                       headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 200, resp
    return resp.json()


def post_chunked(server, path, pieces):
    resp = server.raw_request(
        "POST", path, headers=[("Transfer-Encoding", "chunked"),
                               ("Content-Type", "application/octet-stream")],
        body=encode_chunked(pieces))
    return resp


def json_of(raw):
    assert raw.status == 200, raw
    body = raw.body
    if raw.header("Transfer-Encoding") == "chunked":
        body, complete = decode_chunked(body)
        assert complete, raw
    return json.loads(body)


def latin1(data):
    return data.decode("latin-1")


# --- Content-Length bodies ---------------------------------------------------

def test_input_read_without_size_returns_whole_body(server):
    result = post(server, "/in/read-all", b"hello body")
    assert result["data"] == "hello body"
    assert result["content_length"] == "10"


def test_input_read_negative_size_returns_whole_body(server):
    result = post(server, "/in/read-all?n=-1", b"hello body")
    assert result["data"] == "hello body"


def test_input_read_after_end_returns_empty(server):
    result = post(server, "/in/read-all", b"hello body")
    assert result["after"] == ""


def test_input_read_size_returns_exactly_size_until_end(server):
    result = post(server, "/in/read?n=3", b"0123456789")
    assert result["pieces"] == ["012", "345", "678", "9"]


def test_input_read_zero_returns_empty_and_consumes_nothing(server):
    result = post(server, "/in/read-then-all?n=0", b"0123456789")
    assert (result["first"], result["rest"]) == ("", "0123456789")


def test_input_read_size_then_read_rest(server):
    result = post(server, "/in/read-then-all?n=4", b"0123456789")
    assert (result["first"], result["rest"]) == ("0123", "456789")


def test_input_read_size_larger_than_body(server):
    result = post(server, "/in/read?n=1000", b"short")
    assert result["pieces"] == ["short"]


def test_input_read_empty_body_returns_empty(server):
    resp = server.get("/in/read-all")
    assert resp.status == 200, resp
    assert resp.json()["data"] == ""


def test_input_binary_body_is_passed_unchanged(server):
    body = bytes(range(256)) * 40
    result = post(server, "/in/read-all", body)
    assert result["data"] == latin1(body)


def test_input_readline_splits_at_newlines(server):
    result = post(server, "/in/readline", LINES_BODY)
    assert result["lines"] == ["one\n", "two\n", "\n", "three\n", "four\n",
                               "last without newline"]


def test_input_readline_respects_size_limit(server):
    result = post(server, "/in/readline?size=3", b"abcdefgh\nij\n")
    assert result["lines"] == ["abc", "def", "gh\n", "ij\n"]


def test_input_readline_long_line_beyond_internal_buffers(server):
    line = b"x" * 200000 + b"\n"
    result = post(server, "/in/readline", line + b"tail")
    assert result["lines"] == [latin1(line), "tail"]


def test_input_readlines_returns_all_lines(server):
    result = post(server, "/in/readlines", LINES_BODY)
    assert result["lines"] == ["one\n", "two\n", "\n", "three\n", "four\n",
                               "last without newline"]
    assert result["rest"] == ""


def test_input_readlines_hint_returns_whole_lines_and_keeps_the_rest(server):
    result = post(server, "/in/readlines?hint=5", LINES_BODY)
    lines = result["lines"]
    assert lines, result
    assert all(line.endswith("\n") for line in lines[:-1])
    # Whatever the hint made it stop at, nothing is lost or split.
    assert "".join(lines) + result["rest"] == latin1(LINES_BODY)
    # As io.IOBase.readlines: lines are read until their total size reaches
    # the hint ("one\n" is 4 bytes, "one\ntwo\n" 8 >= 5), the rest is left.
    assert lines == ["one\n", "two\n"], result
    assert result["rest"] == "\nthree\nfour\nlast without newline"


def test_input_iteration_yields_lines(server):
    result = post(server, "/in/iter", LINES_BODY)
    assert result["lines"] == ["one\n", "two\n", "\n", "three\n", "four\n",
                               "last without newline"]


def test_input_mixed_readline_and_read_share_one_buffer(server):
    result = post(server, "/in/mixed", b"line one\nabcdefghij\nrest")
    # readline(), read(3), readline(5), readline(), read()
    assert result["parts"] == ["line one\n", "abc", "defgh", "ij\n", "rest"]


def test_input_expect_100_continue_sent_when_the_app_reads(server):
    with server.connect() as sock:
        sock.sendall(b"POST /in/read-all HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 5\r\nExpect: 100-continue\r\n"
                     b"Connection: close\r\n\r\n")
        interim, early = read_head(sock)
        assert interim.status == 100, interim
        sock.sendall(b"hello")
        final = RawResponse(early + read_until_close(sock))
    assert final.status == 200, final
    assert json.loads(final.body)["data"] == "hello"


@pytest.mark.parametrize("chunked", [False, True],
                         ids=["content-length", "chunked"])
def test_input_readline_returns_what_has_arrived_of_the_body(server, chunked):
    """readline() answers with a line the client has sent while the rest
    of the body is still to come: the client sends the next line only
    after the application has echoed the one before."""
    lines = [b"first\n", b"second\n", b"third"]
    if chunked:
        head = (b"POST /chunked/echo-lines HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        pieces = [b"%x\r\n%s\r\n" % (len(line), line) for line in lines]
        pieces[-1] += b"0\r\n\r\n"
    else:
        head = (b"POST /in/echo-lines HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                % sum(map(len, lines)))
        pieces = lines
    with server.connect() as sock:
        sock.sendall(head)
        resp_head = None
        body = b""
        expected = b""
        for line, piece in zip(lines[:-1], pieces):
            sock.sendall(piece)
            expected += line
            if resp_head is None:
                resp_head, body = read_head(sock)
                assert resp_head.status == 200, resp_head
            # The echo of this line comes before the client sends more.
            while len(decode_chunked(body)[0]) < len(expected):
                data = sock.recv(65536)
                assert data, "closed before the echo of %r" % line
                body += data
            assert decode_chunked(body)[0] == expected
        sock.sendall(pieces[-1])
        body += read_until_close(sock)
    data, complete = decode_chunked(body)
    assert complete
    assert data == b"".join(lines)


def test_input_limit_request_body_enforced(server):
    resp = server.post("/limited/read-all", b"x" * 1000)
    assert resp.status == 413, resp
    resp = server.post("/limited/read-all", b"x" * 100)
    assert resp.status == 200
    assert resp.json()["data"] == "x" * 100


CLIENT_CLOSED = ("client closed the connection before sending the whole "
                 "request body")


def test_input_client_gone_mid_body_raises_oserror_in_the_app(server):
    mark = server.log_mark()
    record = server.scratch_path("client-gone")
    with server.connect() as sock:
        sock.sendall(b"POST /in/read-error?record=%s HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
                     b"0123456789" % record.encode())
        sock.shutdown(socket.SHUT_WR)
        raw = RawResponse(read_until_close(sock))
    # The same words in both modes (a daemon learns why from Apache's side).
    assert server.wait_for_json(record) == {
        "error": "OSError", "message": CLIENT_CLOSED, "is_oserror": True}
    # The response may or may not reach a half-closed client; if it does it
    # must report the failed read.  Either way the server goes on.
    if raw.status is not None:
        assert raw.status == 200, raw
        body = raw.body
        if raw.header("Transfer-Encoding") == "chunked":
            body, _ = decode_chunked(body)
        result = json.loads(body)
        assert result.get("is_oserror") is True, result
    resp = post(server, "/in/read-all", b"after the aborted upload")
    assert resp["data"] == "after the aborted upload"
    assert "Traceback" not in server.error_log(since=mark)


def test_input_unread_body_does_not_break_keepalive(server):
    conn = server.http()
    try:
        conn.request("POST", "/in/ignore", body=b"z" * 100000,
                     headers={"Content-Type": "application/octet-stream"})
        first = conn.getresponse()
        assert first.status == 200
        assert json.loads(first.read())["ignored"] is True
        conn.request("POST", "/in/read-all", body=b"second request",
                     headers={"Content-Type": "application/octet-stream"})
        second = conn.getresponse()
        assert second.status == 200
        assert json.loads(second.read())["data"] == "second request"
    finally:
        conn.close()


# --- chunked bodies ----------------------------------------------------------

def test_input_chunked_request_rejected_with_411_by_default(server):
    resp = post_chunked(server, "/in/read-all", [b"hello"])
    assert resp.status == 411, resp


def test_input_chunked_request_read_all(server):
    pieces = [b"first;", b"second;", b"x" * 70000, b"last"]
    result = json_of(post_chunked(server, "/chunked/read-all", pieces))
    assert result["data"] == latin1(b"".join(pieces))
    assert result["content_length"] in (None, "")


def test_input_chunked_request_many_small_chunks(server):
    """Thousands of tiny chunks in one write: Apache hands them over as
    many small buckets (daemon mode gathers them into one frame past
    its limit of pieces per frame)."""
    pieces = [b"%d," % i for i in range(3000)]
    result = json_of(post_chunked(server, "/chunked/read-all", pieces))
    assert result["data"] == latin1(b"".join(pieces))


def test_input_chunked_request_read_size(server):
    pieces = [b"0123", b"45678", b"9"]
    result = json_of(post_chunked(server, "/chunked/read?n=3", pieces))
    assert "".join(result["pieces"]) == "0123456789"
    assert all(0 < len(piece) <= 3 for piece in result["pieces"])


def test_input_chunked_request_readline_across_chunks(server):
    pieces = [b"on", b"e\ntw", b"o\n\nthr", b"ee"]
    result = json_of(post_chunked(server, "/chunked/readline", pieces))
    assert result["lines"] == ["one\n", "two\n", "\n", "three"]


def test_input_chunked_request_iteration(server):
    pieces = [b"a\nb", b"\nc\n"]
    result = json_of(post_chunked(server, "/chunked/iter", pieces))
    assert result["lines"] == ["a\n", "b\n", "c\n"]


def test_input_chunked_request_empty_body(server):
    result = json_of(post_chunked(server, "/chunked/read-all", []))
    assert result["data"] == ""


# --- a body Apache rejects while the app reads it ----------------------------


# read-error catches the OSError and answers 200; read-all lets it go.
READ_ROUTES = pytest.mark.parametrize("route", ["read-error", "read-all"],
                                      ids=["caught", "raised"])


def assert_only_the_error_page(server, raw, path, status, mark):
    """Apache's error page is the whole response: nothing the app made."""
    assert raw.status == status, raw
    assert raw.body.count(b"<html>") == 1, raw.body
    assert raw.body.endswith(b"</html>\n"), raw.body[-300:]
    assert server.wait_for_access("POST %s HTTP/1.1" % path,
                                  since=mark) == status


@READ_ROUTES
def test_input_chunked_body_over_limit_gets_only_the_413_page(server, route):
    record = server.scratch_path("over-limit-" + route)
    path = "/chunked-limited/%s?record=%s" % (route, record)
    mark = server.access_mark()
    raw = post_chunked(server, path, [b"a" * 300, b"b" * 300])
    assert_only_the_error_page(server, raw, path, 413, mark)
    if route == "read-error":
        # The application is told that Apache answered for it.
        assert server.wait_for_json(record) == {
            "error": "OSError", "is_oserror": True,
            "message": "request body rejected by Apache (HTTP status 413 "
                       "was sent to the client)"}


@READ_ROUTES
def test_input_malformed_chunk_mid_body_gets_only_the_400_page(server, route):
    path = "/chunked/" + route
    mark = server.access_mark()
    raw = server.raw(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: close\r\n"
                      "\r\n5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n"
                      % path).encode())
    assert_only_the_error_page(server, raw, path, 400, mark)


# --- a read that blocks releases the interpreter -------------------------------

# One process of ten threads: every request meets in one interpreter.
ONE_PROCESS_EVENT = """\
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 1
    ThreadsPerChild 10
    ThreadLimit 10
    MinSpareThreads 5
    MaxSpareThreads 15
    MaxRequestWorkers 10
    MaxConnectionsPerChild 0
</IfModule>"""


@pytest.fixture(scope="module", params=harness.WSGI_MODES)
def one_process_server(httpd_env, request):
    with httpd_env.server("WSGIScriptAlias /in @APPS@/input_app.wsgi\n",
                          mpm="event", mpm_settings=ONE_PROCESS_EVENT,
                          wsgi_mode=request.param, daemon_processes=1,
                          name="input-one-" + request.param) as srv:
        yield srv


def _pid_in(path):
    harness.wait_for(lambda: os.path.exists(path),
                     what="the app to write %s" % path)
    with open(path) as f:
        return int(f.read())


def test_input_blocked_read_lets_other_requests_run(one_process_server):
    """A request whose client stalls mid-body blocks in wsgi.input.read()
    without the GIL: another request to the same interpreter, in the same
    process, is answered while the first one still waits for its body."""
    srv = one_process_server
    started = srv.scratch_path("stalled-read")
    with srv.connect() as stalled:
        stalled.sendall(
            b"POST /in/read-all?started=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 10\r\nConnection: close\r\n\r\nabc"
            % started.encode())
        stalled_pid = _pid_in(started)
        time.sleep(0.2)     # into read(), waiting for the other 7 bytes

        other = srv.scratch_path("other-read")
        resp = srv.post("/in/read-all?started=" + other, b"hello")
        assert resp.status == 200, resp
        assert resp.json()["data"] == "hello"
        assert _pid_in(other) == stalled_pid

        # The stalled request is still waiting: no answer yet.
        stalled.setblocking(False)
        with pytest.raises(BlockingIOError):
            stalled.recv(1)
        stalled.setblocking(True)
        stalled.settimeout(harness.IO_TIMEOUT)
        stalled.sendall(b"defghij")
        raw = RawResponse(read_until_close(stalled))
    assert json_of(raw)["data"] == "abcdefghij"
