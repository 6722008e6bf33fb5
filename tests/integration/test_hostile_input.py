"""Hostile input: requests a well-behaved client never sends.

Every test holds in embedded mode (event MPM) and in daemon mode: Apache
answers or the application sees an error, nothing hangs or crashes (the
conftest fails a test during which an Apache child or a daemon process died
of a signal), and a normal request succeeds afterwards.
test_hostile_batch_leaves_memory_flat sends the whole quick hostile batch
again and again and checks that the Apache child and the daemon process do
not grow.  The two test classes after it restart the server with other
limits (no RequestReadTimeout; no LimitRequestFields).

The server has short timeouts so the slow-client tests are quick: Timeout 4
and, with mod_reqtimeout, RequestReadTimeout body=2,MinRate=500.  It has one
Apache child of CHILD_THREADS threads and (daemon mode) one daemon process of
DAEMON_THREADS threads: the capacity that a slow client must not keep.

test_idle_keepalive_connections_10000_against_daemon_mode has a server of
its own, sized for 10,000 connections.
"""

import json
import os
import re
import resource
import selectors
import socket
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from harness import RawResponse, decode_chunked, read_head, read_until_close

FIELD_SIZE = 1000               # LimitRequestFieldSize
FIELDS = 6000                   # LimitRequestFields
MANY_HEADERS = 5000             # "thousands", within FIELDS
TIMEOUT = 4                     # Apache's Timeout
BODY_TIMEOUT = 2                # RequestReadTimeout body=
CHILD_THREADS = 8
DAEMON_THREADS = 4
# How long a test waits for an answer that a hung server would never give.
ANSWER_DEADLINE = 30.0
SECRET = "not-for-clients-" + uuid.uuid4().hex

ONE_CHILD = """\
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 1
    ThreadsPerChild {threads}
    ThreadLimit {threads}
    MinSpareThreads 1
    MaxSpareThreads {threads}
    MaxRequestWorkers {threads}
    MaxConnectionsPerChild 0
</IfModule>""".format(threads=CHILD_THREADS)

CONFIG = """
{reqtimeout_module}
LimitRequestFieldSize {field_size}
LimitRequestFields {fields}
Timeout {timeout}
<IfModule reqtimeout_module>
    RequestReadTimeout handshake=0 header=10 body={body_timeout},MinRate=500
</IfModule>
WSGIScriptAlias /app @APPS@/hostile/hostile_app.wsgi
WSGIScriptAlias /dir @APPS@/hostile
WSGIScriptAlias /proxied @APPS@/hostile/hostile_app.wsgi
<Location /proxied>
    WSGITrustedProxyHeaders X-Forwarded-For
    WSGITrustedProxies 127.0.0.1
</Location>
<Location /app>
    WSGIChunkedRequest On
</Location>
Alias /static @ROOT@/htdocs/static
"""


def hostile_config(install):
    return CONFIG.format(reqtimeout_module=install.module_line("reqtimeout"),
                         field_size=FIELD_SIZE, fields=FIELDS,
                         timeout=TIMEOUT, body_timeout=BODY_TIMEOUT)


@pytest.fixture(scope="module", params=[
    pytest.param(harness.ServerVariant("event", "embedded"), id="event"),
    pytest.param(harness.ServerVariant("event", "daemon"), id="event-daemon",
                 marks=pytest.mark.daemon)])
def server(httpd_env, request):
    variant = request.param
    srv = httpd_env.server(hostile_config(httpd_env.install), mpm="event",
                           mpm_settings=ONE_CHILD,
                           wsgi_mode=variant.wsgi_mode, daemon_processes=1,
                           daemon_threads=DAEMON_THREADS,
                           name="hostile-" + variant.name)
    static = os.path.join(srv.root, "htdocs", "static")
    os.mkdir(static, 0o755)
    with open(os.path.join(static, "public.txt"), "w") as f:
        f.write("public\n")
    # Outside every DocumentRoot, Alias and WSGIScriptAlias.
    for path in (os.path.join(srv.root, "secret.txt"),
                 os.path.join(srv.apps, "secret.txt")):
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(path, 0o644)
    with srv:
        yield srv


def capacity(server):
    """How many requests can be in the application at once."""
    return DAEMON_THREADS if server.daemon else CHILD_THREADS


def assert_server_fine(server):
    """A normal request succeeds, on a fresh connection."""
    resp = server.get("/app/hello")
    assert (resp.status, resp.body) == (200, b"hello\n"), resp


def exchange(server, data, *, half_close=False, timeout=ANSWER_DEADLINE):
    """Sends raw bytes, optionally shuts the sending side, reads until the
    server closes; the RawResponse (status None when nothing came back)."""
    with server.connect(timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered (and stopped reading) before the end of
            # what we sent: its answer may still be there to read.
            pass
        try:
            return RawResponse(read_until_close(sock))
        except socket.timeout:
            pytest.fail("no answer within %.0fs to %r: the server hangs"
                        % (timeout, data[:200]))


def reset(sock):
    """Closes with a reset rather than a polite FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def head(method, path, headers=(), close=True):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    lines += ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def body_of(raw):
    body = raw.body
    if raw.header("Transfer-Encoding") == "chunked":
        body, _ = decode_chunked(body)
    return body


def json_of(raw):
    assert raw.status == 200, raw
    return json.loads(body_of(raw))


# --- header limits -----------------------------------------------------------

def field_of_length(name, length):
    """A header (name, value) whose line "name: value" is `length` long."""
    return name, "v" * (length - len(name) - 2)


def test_header_at_limit_request_field_size_accepted(server):
    raw = exchange(server, head("GET", "/app/environ", [
        field_of_length("X-Big", FIELD_SIZE)]))
    env = json_of(raw)
    assert len(env["HTTP_X_BIG"]) == FIELD_SIZE - len("X-Big: ")


@pytest.mark.parametrize("length", [FIELD_SIZE + 16, 64 * 1024, 1024 * 1024])
def test_header_past_limit_request_field_size_rejected_with_400(server,
                                                                length):
    mark = server.log_mark()
    raw = exchange(server, head("GET", "/app/environ", [
        field_of_length("X-Big", length)]))
    assert raw.status == 400, raw
    assert "LimitRequestFieldSize" in server.error_log(since=mark)
    assert_server_fine(server)


def many_headers(count, prefix="X-Many-"):
    return [("%s%d" % (prefix, i), "v%d" % i) for i in range(count)]


def test_header_count_at_limit_request_fields_accepted(server):
    # Host and Connection count too.
    raw = exchange(server, head("GET", "/app/environ?count=1",
                                many_headers(FIELDS - 2)))
    env = json_of(raw)
    assert env == {"http_count": FIELDS,
                   "other_http": ["HTTP_CONNECTION", "HTTP_HOST"]}


def test_header_count_past_limit_request_fields_rejected_with_400(server):
    mark = server.log_mark()
    raw = exchange(server, head("GET", "/app/environ?count=1",
                                many_headers(FIELDS - 1)))
    assert raw.status == 400, raw
    assert "LimitRequestFields" in server.error_log(since=mark)
    assert_server_fine(server)


def test_thousands_of_headers_all_reach_the_environ(server):
    headers = many_headers(MANY_HEADERS)
    raw = exchange(server, head("GET", "/app/environ", headers))
    env = json_of(raw)
    for name, value in headers:
        assert env["HTTP_" + name.upper().replace("-", "_")] == value


def test_header_names_changing_from_request_to_request(server):
    """The environ's key strings are kept per interpreter (a bounded cache
    that header names a client makes up churn): each request still gets
    exactly its own headers, long names included."""
    for rnd in range(4):
        headers = many_headers(300, prefix="X-R%d-" % rnd)
        headers.append(("X-" + "L" * 100 + str(rnd), "long %d" % rnd))
        env = json_of(exchange(server, head("GET", "/app/environ", headers)))
        sent = {"HTTP_" + name.upper().replace("-", "_"): value
                for name, value in headers}
        got = {k: v for k, v in env.items() if k.startswith("HTTP_X_")}
        assert got == sent


def test_request_line_past_limit_request_line_rejected_with_414(server):
    raw = exchange(server, head("GET", "/app/hello?" + "q" * 9000))
    assert raw.status == 414, raw
    assert_server_fine(server)


# --- header names with underscores -------------------------------------------

UNDERSCORE_HEADERS = [
    ("X_Forwarded_For", "6.6.6.6"),
    ("Content_Length", "99999"),
    ("Content_Type", "spoofed/type"),
    ("X_Real_IP", "6.6.6.7"),
    ("Remote_Addr", "6.6.6.8"),
    ("X-Mixed_Name", "spoofed-mixed"),
    ("Authorization_", "spoofed-auth"),
]


@pytest.mark.parametrize("order", ["underscore-first", "dash-first"])
def test_underscore_header_names_never_reach_the_environ(server, order):
    dashes = [("X-Forwarded-For", "1.1.1.1"), ("X-Real-IP", "1.1.1.2"),
              ("X-Mixed-Name", "real-mixed")]
    spoofed = [(k, "spoofed-" + v) for k, v in UNDERSCORE_HEADERS]
    headers = spoofed + dashes if order == "underscore-first" \
        else dashes + spoofed
    env = json_of(exchange(server, head("GET", "/app/environ", headers)))
    leaked = {k: v for k, v in env.items() if "spoofed" in v}
    assert leaked == {}
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"
    assert env["HTTP_X_REAL_IP"] == "1.1.1.2"
    assert env["HTTP_X_MIXED_NAME"] == "real-mixed"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env.get("CONTENT_LENGTH", "") in ("", "0")
    assert "CONTENT_TYPE" not in env or env["CONTENT_TYPE"] == ""


def test_underscore_header_alone_makes_no_environ_key(server):
    env = json_of(exchange(server, head("GET", "/app/environ",
                                        UNDERSCORE_HEADERS)))
    for name, value in UNDERSCORE_HEADERS:
        key = "HTTP_" + name.upper().replace("-", "_")
        assert key not in env, (name, env.get(key))
        assert value not in env.values()


def test_underscore_forwarded_for_not_trusted_from_a_trusted_proxy(server):
    """X_Forwarded_For must not pass for X-Forwarded-For, even from a peer
    whose X-Forwarded-For is trusted."""
    env = json_of(exchange(server, head("GET", "/proxied/environ", [
        ("X_Forwarded_For", "6.6.6.6")])))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert "6.6.6.6" not in env.values()
    env = json_of(exchange(server, head("GET", "/proxied/environ", [
        ("X_Forwarded_For", "6.6.6.6"), ("X-Forwarded-For", "5.5.5.5")])))
    assert env["REMOTE_ADDR"] == "5.5.5.5"
    assert "6.6.6.6" not in env.values()


# --- malformed request heads -------------------------------------------------

GET_ENVIRON = b"GET /app/environ HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
    b"Connection: close\r\n"
POST_READ = b"POST /app/read HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
    b"Connection: close\r\n"

MALFORMED_HEADS = {
    "nul-in-value": GET_ENVIRON + b"X-N: a\x00b\r\n\r\n",
    "control-in-value": GET_ENVIRON + b"X-N: a\x01b\r\n\r\n",
    "no-colon": GET_ENVIRON + b"X-No-Colon\r\n\r\n",
    "space-before-colon": GET_ENVIRON + b"X-S : v\r\n\r\n",
    "empty-name": GET_ENVIRON + b": v\r\n\r\n",
    "two-hosts": b"GET /app/environ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad-host": b"GET /app/environ HTTP/1.1\r\nHost: a b/c\r\n\r\n",
    "negative-length": POST_READ + b"Content-Length: -1\r\n\r\n",
    "garbage-length": POST_READ + b"Content-Length: 12abc\r\n\r\nhello",
    "two-lengths": POST_READ + b"Content-Length: 5\r\n"
                               b"Content-Length: 6\r\n\r\nhello!",
    "huge-length": POST_READ + b"Content-Length: 99999999999999999999999"
                               b"\r\n\r\nhello",
    "unknown-coding": POST_READ + b"Transfer-Encoding: gzip\r\n\r\nhello",
    "chunked-twice": POST_READ + b"Transfer-Encoding: chunked, chunked\r\n"
                                 b"\r\n5\r\nhello\r\n0\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_HEADS))
def test_malformed_request_head_refused_by_apache(server, name):
    raw = exchange(server, MALFORMED_HEADS[name])
    assert raw.status in (400, 501), raw
    assert_server_fine(server)


def test_header_values_reach_the_environ_as_latin1(server):
    value = b"caf\xe9 \xff\x80 \xe2\x9c\x93"
    env = json_of(exchange(server, GET_ENVIRON + b"X-L: " + value
                           + b"\r\n\r\n"))
    assert env["HTTP_X_L"] == value.decode("latin-1")


@pytest.mark.parametrize("method", ["FOO", "get", "X" * 4000])
def test_unknown_methods_reach_the_app_as_they_are(server, method):
    env = json_of(exchange(server, head(method, "/app/environ")))
    assert env["REQUEST_METHOD"] == method


# --- chunked bodies ----------------------------------------------------------

def marker_of(server, name):
    return server.scratch_path(name)


CHUNKED_HEAD = [("Transfer-Encoding", "chunked"),
                ("Content-Type", "application/octet-stream")]

BAD_CHUNKED = {
    "bad-hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative-size": b"5\r\nhello\r\n-1\r\nx\r\n0\r\n\r\n",
    "size-overflows": b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "missing-crlf-after-data": b"5\r\nhelloXX5\r\nworld\r\n0\r\n\r\n",
    "space-in-size": b"5 5\r\nhello\r\n0\r\n\r\n",
    "empty-size-line": b"\r\nhello\r\n0\r\n\r\n",
    "bare-lf": b"5\nhello\n0\n\n",
    "longer-than-size": b"3\r\nhello\r\n0\r\n\r\n",
    "nul-in-size": b"5\x00\r\nhello\r\n0\r\n\r\n",
    "endless-extension": b"5;" + b"e" * 100000 + b"\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CHUNKED))
def test_chunked_body_invalid_gives_400_or_a_read_error(server, name):
    marker = marker_of(server, "chunked-" + name)
    raw = exchange(server, head("POST", "/app/read?marker=" + marker,
                                CHUNKED_HEAD) + BAD_CHUNKED[name])
    assert raw.status is not None, raw
    if raw.status == 200:
        # The app read it: then it must have seen the error, never a
        # silently shortened body passed off as complete.
        assert json_of(raw)["error"] is not None, raw
    else:
        assert raw.status in (400, 413), raw
    assert_server_fine(server)


TRUNCATED_CHUNKED = {
    "mid-data": b"10\r\nhello",
    "mid-size-line": b"5\r\nhello\r\n1",
    "before-last-chunk": b"5\r\nhello\r\n",
    "mid-trailer": b"5\r\nhello\r\n0\r\nX-Trailer: ye",
}


@pytest.mark.parametrize("ending", ["half-close", "reset"])
@pytest.mark.parametrize("name", sorted(TRUNCATED_CHUNKED))
def test_chunked_body_truncated_by_closing_gives_the_app_an_error(
        server, name, ending):
    marker = marker_of(server, "truncated-" + name)
    data = head("POST", "/app/read?marker=" + marker, CHUNKED_HEAD) \
        + TRUNCATED_CHUNKED[name]
    started = marker + ".started"
    data = data.replace(b"?marker=", b"?started=%s&marker=" % started.encode())
    sock = server.connect(ANSWER_DEADLINE)
    sock.sendall(data)
    if ending == "reset":
        # Vanish once the app reads (a reset may drop what the server has
        # not read yet: then the app would never run).
        server.wait_for_json(started)
        reset(sock)
    else:
        sock.shutdown(socket.SHUT_WR)
        read_until_close(sock)
        sock.close()
    if name == "mid-trailer":
        # The body itself is complete: the app may see all of it, or an
        # error; what matters is that it finished.
        record = server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
        assert record["length"] in (0, 5), record
    else:
        record = server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
        assert record["error"] is not None, record
        assert record["length"] <= 5, record
    assert_server_fine(server)


def test_chunked_body_stalled_is_held_by_timeout(server):
    marker = marker_of(server, "chunked-stalled")
    started = time.monotonic()
    raw = exchange(server, head("POST", "/app/read?marker=" + marker,
                                CHUNKED_HEAD) + b"10\r\nhello")
    assert raw.status is not None, raw
    record = server.wait_for_json(marker)
    assert record["error"] is not None, record
    assert record["error"] == ("TimeoutError: timed out reading the "
                               "request body"), record
    assert time.monotonic() - started < ANSWER_DEADLINE
    assert_server_fine(server)


# --- bodies shorter than their Content-Length --------------------------------

@pytest.mark.parametrize("ending", ["half-close", "reset", "stall"])
def test_body_shorter_than_content_length(server, ending):
    marker = marker_of(server, "short-" + ending)
    started = marker + ".started"
    data = head("POST", "/app/read?started=%s&marker=%s" % (started, marker),
                [("Content-Length", "100000"),
                 ("Content-Type", "application/octet-stream")]) + b"x" * 10
    sock = server.connect(ANSWER_DEADLINE)
    try:
        sock.sendall(data)
        server.wait_for_json(started)
        if ending == "half-close":
            sock.shutdown(socket.SHUT_WR)
            read_until_close(sock)
        elif ending == "stall":
            # Held by Timeout (or RequestReadTimeout's body timeout): the
            # server answers or closes, the client never has to.
            try:
                read_until_close(sock)
            except socket.timeout:
                pytest.fail("the server held a stalled body for %.0fs"
                            % ANSWER_DEADLINE)
    finally:
        if ending == "reset":
            reset(sock)
        else:
            sock.close()
    record = server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
    assert record["error"] is not None, record
    assert record["length"] <= 10, record
    # The same words in both modes (a daemon learns why from Apache's side).
    if ending == "half-close":
        assert record["error"] == ("OSError: client closed the connection "
                                   "before sending the whole request body")
    elif ending == "stall":
        assert record["error"] == ("TimeoutError: timed out reading the "
                                   "request body")
    assert_server_fine(server)


# --- slow clients ------------------------------------------------------------

def barrier(server, n):
    """n concurrent requests that each wait until all n are in the app:
    true only if n application threads are free."""
    directory = server.scratch_path("barrier")

    def one(_):
        resp = server.get("/app/barrier?n=%d&dir=%s" % (n, directory))
        return resp.status == 200 and resp.json()["met"]

    with ThreadPoolExecutor(n) as pool:
        return all(pool.map(one, range(n)))


def test_full_capacity_available_at_start(server):
    """The barrier itself works: without it the slow-client test proves
    nothing."""
    assert barrier(server, capacity(server))


def test_full_capacity_barrier_fails_one_past_capacity(server):
    """...and it does tell a missing thread."""
    assert not barrier(server, capacity(server) + 1)


def test_body_at_one_byte_per_second_is_cut_and_threads_freed(server,
                                                              httpd_env):
    if not httpd_env.install.has_module("reqtimeout"):
        pytest.skip("Apache at %s has no mod_reqtimeout: nothing but the "
                    "client's patience bounds a 1 byte/s body"
                    % httpd_env.install.binary)
    n = capacity(server)
    markers = [marker_of(server, "slow-%d" % i) for i in range(n)]
    socks = []
    for marker in markers:
        sock = server.connect(ANSWER_DEADLINE)
        sock.sendall(head("POST", "/app/read?marker=" + marker,
                          [("Content-Length", "1000"),
                           ("Content-Type", "application/octet-stream")]))
        sock.setblocking(False)
        socks.append(sock)
    # 1000 bytes at 1 byte/s would take 17 minutes: the server must cut
    # every one of them short long before ANSWER_DEADLINE.
    open_socks = set(socks)
    end = time.monotonic() + ANSWER_DEADLINE
    try:
        while open_socks and time.monotonic() < end:
            for sock in list(open_socks):
                try:
                    if sock.recv(65536) == b"":
                        open_socks.discard(sock)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    open_socks.discard(sock)
                    continue
                try:
                    sock.send(b"x")
                except OSError:
                    pass
            time.sleep(1.0)
        assert not open_socks, "%d of %d clients sending 1 byte/s still " \
            "held after %.0fs" % (len(open_socks), n, ANSWER_DEADLINE)
    finally:
        for sock in socks:
            sock.close()
    for marker in markers:
        record = server.wait_for_json(marker)
        assert record["error"] is not None, record
        assert record["length"] < 100, record
    # Every thread is back: n requests can be in the app at once.
    assert barrier(server, n)


# --- clients that leave ------------------------------------------------------

@pytest.mark.parametrize("ending", ["half-close", "reset"])
def test_disconnect_mid_request_still_closes_the_iterable(server, ending):
    marker = marker_of(server, "leave-request-" + ending)
    started = marker + ".started"
    sock = server.connect(ANSWER_DEADLINE)
    sock.sendall(head("POST", "/app/closing?read=1&items=4&started=%s&"
                      "marker=%s" % (started, marker),
                      [("Content-Length", "100000")]) + b"y" * 1000)
    server.wait_for_json(started)
    if ending == "reset":
        reset(sock)
    else:
        sock.shutdown(socket.SHUT_WR)
        sock.close()
    record = server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
    assert record["closed"] is True
    total, error = record["read"]
    assert error is not None, record
    assert total <= 1000
    assert_server_fine(server)


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_disconnect_mid_response_still_closes_the_iterable(server, ending):
    items = 100000                          # 6 GiB if nobody stops it
    marker = marker_of(server, "leave-response-" + ending)
    sock = server.connect(ANSWER_DEADLINE)
    sock.sendall(head("GET", "/app/closing?items=%d&marker=%s"
                      % (items, marker)))
    resp, _ = read_head(sock)
    assert resp.status == 200, resp
    sock.recv(65536)
    if ending == "reset":
        reset(sock)
    else:
        sock.close()
    record = server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
    assert record["closed"] is True
    assert record["yielded"] < items
    assert_server_fine(server)


def test_disconnect_before_the_app_runs_leaves_no_thread_behind(server):
    """Clients that send a request head and vanish at once, many times."""
    for i in range(50):
        sock = server.connect(ANSWER_DEADLINE)
        sock.sendall(head("POST", "/app/read", [("Content-Length", "50")])
                     + b"z" * (i % 7))
        reset(sock)
    assert barrier(server, capacity(server))


# --- paths -------------------------------------------------------------------

# Sent as is on the request line.
HOSTILE_PATHS = [
    "/static/../secret.txt",
    "/static/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2e%2e/%2e%2e/secret.txt",
    "/static/.%2e/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2f..%2fsecret.txt",
    "/static/..%5c..%5csecret.txt",
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/secret.txt",
    "/static/%c0%af..%c0%af..%c0%afsecret.txt",
    "/static/%e0%80%ae%e0%80%ae/secret.txt",
    "/static/%252e%252e/secret.txt",
    "/static/public.txt%00",
    "/static/public.txt%00.wsgi",
    "/static/%00../secret.txt",
    "/%2e%2e/secret.txt",
    "/../secret.txt",
    "//secret.txt",
    "/static//../../secret.txt",
    "/app/%00",
    "/app/hello%00",
    "/app/../secret.txt",
    "/app/../../secret.txt",
    "/app/%2e%2e/%2e%2e/secret.txt",
    "/app/..%2f..%2fsecret.txt",
    "/app/%c0%ae%c0%ae/%c0%ae%c0%ae/secret.txt",
    "/app/%c0%af%c0%afsecret.txt",
    "/app/%ff%fe%fd",
    "/app/%",
    "/app/%zz",
    "/app/%0d%0aX-Injected:%20yes",
    "/dir/../secret.txt",
    "/dir/%2e%2e/secret.txt",
    "/dir/..%2fsecret.txt",
    "/dir/secret.txt",
    "/dir/hostile_app.wsgi%00/hello",
    "/dir/%c0%ae%c0%ae/secret.txt",
    "/dir/..%c0%afsecret.txt",
    "/apps/hostile/hostile_app.wsgi",
    "/apps/secret.txt",
    "*",
    "secret.txt",
    "http://127.0.0.1/../secret.txt",
]


def test_static_alias_serves_its_files(server):
    """What the path tests must not get round works at all."""
    raw = exchange(server, head("GET", "/static/public.txt"))
    assert (raw.status, raw.body) == (200, b"public\n"), raw
    raw = exchange(server, head("GET", "/dir/hostile_app.wsgi/hello"))
    assert (raw.status, raw.body) == (200, b"hello\n"), raw


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_path_serves_nothing_outside_the_tree(server, path):
    raw = exchange(server, head("GET", path))
    assert raw.status is not None and 400 <= raw.status < 500, raw
    assert SECRET.encode() not in raw.data
    assert b"def application" not in raw.data
    assert raw.header("X-Injected") is None
    if raw.header("Content-Type") == "application/json":
        # The app's "no such route" answer: what it was given is sane.
        seen = json.loads(body_of(raw))
        assert "\x00" not in seen["path_info"], seen
        assert "/../" not in seen["path_info"] + "/", seen
    assert_server_fine(server)


# --- memory ------------------------------------------------------------------

def hostile_batch(server):
    """The quick hostile requests, once each; returns when all are done."""
    exchange(server, head("GET", "/app/environ", [
        field_of_length("X-Big", FIELD_SIZE)]))
    exchange(server, head("GET", "/app/environ", [
        field_of_length("X-Big", 64 * 1024)]))
    exchange(server, head("GET", "/app/environ?count=1",
                          many_headers(MANY_HEADERS)))
    exchange(server, head("GET", "/app/environ?count=1",
                          many_headers(FIELDS)))
    exchange(server, head("GET", "/app/environ", UNDERSCORE_HEADERS))
    for body in BAD_CHUNKED.values():
        exchange(server, head("POST", "/app/read", CHUNKED_HEAD) + body)
    for body in TRUNCATED_CHUNKED.values():
        exchange(server, head("POST", "/app/read", CHUNKED_HEAD) + body,
                 half_close=True)
    markers = []
    for ending in ("close", "reset"):
        marker = marker_of(server, "batch-leave")
        markers.append(marker)
        sock = server.connect(ANSWER_DEADLINE)
        sock.sendall(head("GET", "/app/closing?items=1000&marker=" + marker))
        read_head(sock)
        sock.recv(65536)
        reset(sock) if ending == "reset" else sock.close()
    marker = marker_of(server, "batch-leave-request")
    markers.append(marker)
    started = marker + ".started"
    sock = server.connect(ANSWER_DEADLINE)
    sock.sendall(head("POST", "/app/closing?read=1&started=%s&marker=%s"
                      % (started, marker),
                      [("Content-Length", "100000")]) + b"y" * 1000)
    server.wait_for_json(started)
    reset(sock)
    exchange(server, head("POST", "/app/read", [("Content-Length", "1000")])
             + b"x" * 10, half_close=True)
    for path in HOSTILE_PATHS:
        exchange(server, head("GET", path))
    for marker in markers:
        server.wait_for_json(marker, deadline=ANSWER_DEADLINE)
    assert_server_fine(server)


def rss_of(pids):
    rss = {pid: harness.proc_status_kb(pid, "VmRSS") for pid in pids}
    return {pid: kb for pid, kb in rss.items() if kb is not None}


MEMORY_ROUNDS = 4
# After the warm-up rounds, MEMORY_ROUNDS more rounds must not grow any
# process by more than this (allocator noise, never a leak per request).
MEMORY_GROWTH_LIMIT_KB = 4 * 1024


def test_hostile_batch_leaves_memory_flat(server):
    """Warm up with three rounds of the batch, then MEMORY_ROUNDS more must not
    grow the Apache child or the daemon process by more than a few MiB.

    Each round sends MANY_HEADERS and FIELDS headers (~100 KiB of environ
    each), so a leak of the environ would show at once."""
    for _ in range(3):
        hostile_batch(server)
    pids = server.worker_pids() + server.daemon_pids()
    before = rss_of(pids)
    if len(before) != len(pids):
        pytest.skip("cannot read VmRSS in /proc/<pid>/status of %s" % pids)
    for _ in range(MEMORY_ROUNDS):
        hostile_batch(server)
    after = rss_of(pids)
    assert sorted(after) == sorted(before), \
        "processes were replaced (%s, then %s): cannot compare memory" \
        % (sorted(before), sorted(after))
    growth = {pid: after[pid] - before[pid] for pid in pids}
    limit_kb = MEMORY_GROWTH_LIMIT_KB
    if harness.sanitize_enabled():
        # Freed blocks wait in AddressSanitizer's quarantine before reuse.
        limit_kb += harness.SANITIZE_QUARANTINE_MB * 1024
    assert max(growth.values()) < limit_kb, \
        "RSS grew by %s KiB over %d rounds of hostile requests (RSS %s KiB)" \
        % (growth, MEMORY_ROUNDS, after)



# --- Timeout alone -----------------------------------------------------------

class TestStalledBodyHeldByTimeoutAlone:
    """Without RequestReadTimeout, Apache's Timeout still frees the thread
    of a client that stops sending its body."""

    @pytest.fixture(autouse=True)
    def _config(self, server, httpd_env):
        config = hostile_config(httpd_env.install).replace(
            "body=%d,MinRate=500" % BODY_TIMEOUT, "body=0")
        if server.config != config:
            server.restart(config)

    @pytest.mark.parametrize("body", ["content-length", "chunked"])
    def test_stalled_body_held_by_timeout(self, server, body):
        marker = marker_of(server, "timeout-alone-" + body)
        if body == "chunked":
            data = head("POST", "/app/read?marker=" + marker,
                        CHUNKED_HEAD) + b"10\r\nhello"
        else:
            data = head("POST", "/app/read?marker=" + marker,
                        [("Content-Length", "100")]) + b"hello"
        started = time.monotonic()
        raw = exchange(server, data)
        assert raw.status is not None, raw
        record = server.wait_for_json(marker)
        assert record["error"] == ("TimeoutError: timed out reading the "
                                   "request body"), record
        # Held for about Timeout, not for ever.
        assert TIMEOUT - 1 <= time.monotonic() - started < ANSWER_DEADLINE
        assert barrier(server, capacity(server))


# --- past what a daemon accepts ----------------------------------------------

class TestEnvironBeyondTheDaemonWireLimits:
    """With LimitRequestFields 0 (no limit) a client can send more headers
    than a REQ_HEAD frame carries (TETHER_WIRE_MAX_PAIRS pairs,
    TETHER_WIRE_MAX_PAYLOAD bytes).  Embedded mode passes them all; daemon
    mode must refuse the request cleanly (431, a log line that says why),
    not blame the daemon process with a 502."""

    @pytest.fixture(autouse=True)
    def _config(self, server, httpd_env):
        config = hostile_config(httpd_env.install).replace(
            "LimitRequestFieldSize %d" % FIELD_SIZE,
            "LimitRequestFieldSize 8190").replace(
            "LimitRequestFields %d" % FIELDS, "LimitRequestFields 0")
        if server.config != config:
            server.restart(config)

    @pytest.mark.parametrize("shape", ["10500-small", "2100-of-8000-bytes"])
    def test_environ_beyond_daemon_wire_limits(self, server, shape):
        if shape == "10500-small":
            headers = many_headers(10500)
        else:
            headers = [("X-Many-%d" % i, "w" * 8000) for i in range(2100)]
        mark = server.log_mark()
        raw = exchange(server, head("GET", "/app/environ?count=1", headers))
        if server.daemon:
            assert raw.status == 431, raw
            log = server.error_log(since=mark)
            assert "died" not in log
            assert "TETHER0513" in log and "LimitRequestFields" in log
        else:
            assert json_of(raw)["http_count"] == len(headers) + 2
        assert_server_fine(server)


# --- 10,000 idle keep-alive connections --------------------------------------

IDLE_CONNECTIONS = 10000
# Four children, each able to hold IDLE_CONNECTIONS / 4 and more: the event
# MPM keeps an idle keep-alive connection without a thread, up to
# ThreadsPerChild + AsyncRequestWorkerFactor * idle threads per child.
MANY_CONNECTIONS = """\
<IfModule mpm_event_module>
    StartServers 4
    ServerLimit 4
    ThreadsPerChild 25
    ThreadLimit 25
    MinSpareThreads 25
    MaxSpareThreads 100
    MaxRequestWorkers 100
    AsyncRequestWorkerFactor 200
    MaxConnectionsPerChild 0
</IfModule>"""

IDLE_CONFIG = """
ListenBacklog 4096
KeepAliveTimeout 300
MaxKeepAliveRequests 0
WSGIScriptAlias /app @APPS@/hostile/hostile_app.wsgi
"""
# At most this many connections being opened or answered at once: fewer
# than one child's threads, for the event MPM closes a child's keep-alive
# connections whenever all its threads are busy.
IDLE_WAVE = 20
HELLO_RESPONSE_END = b"hello\n"


@pytest.fixture
def many_files():
    """Raises RLIMIT_NOFILE for this process (and the Apache it starts) so
    IDLE_CONNECTIONS sockets fit; restores it afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_CONNECTIONS + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit is %d; %d idle connections "
                    "need %d file descriptors" % (hard, IDLE_CONNECTIONS,
                                                  need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (
        need if hard == resource.RLIM_INFINITY else max(soft, min(hard,
                                                               need * 2)),
        hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle_connections(port, count):
    """Opens `count` connections, each making one keep-alive request to
    /app/hello and reading its answer; returns the idle sockets.

    Non-blocking sockets and one selector: at most IDLE_WAVE in progress."""
    request = (b"GET /app/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sel = selectors.DefaultSelector()
    idle = []
    started = 0
    busy = 0
    end = time.monotonic() + 120
    try:
        while len(idle) < count:
            while busy < IDLE_WAVE and started < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                sel.register(sock, selectors.EVENT_WRITE, [b""])
                started += 1
                busy += 1
            if time.monotonic() > end:
                raise AssertionError(
                    "only %d of %d connections were answered within 120s"
                    % (len(idle), count))
            for key, events in sel.select(timeout=1.0):
                sock, buf = key.fileobj, key.data
                if events & selectors.EVENT_WRITE:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    assert err == 0, "connect failed: %s" % os.strerror(err)
                    sock.send(request)
                    sel.modify(sock, selectors.EVENT_READ, buf)
                    continue
                data = sock.recv(4096)
                assert data, "the server closed connection %d before " \
                    "answering (%r)" % (len(idle), buf[0])
                buf[0] += data
                if buf[0].endswith(HELLO_RESPONSE_END):
                    assert buf[0].startswith(b"HTTP/1.1 200 "), buf[0]
                    sel.unregister(sock)
                    idle.append(sock)
                    busy -= 1
    except BaseException:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for sock in idle:
            sock.close()
        raise
    finally:
        sel.close()
    return idle


def closed_by_server(socks):
    """The idle sockets that the server has closed (EOF or reset)."""
    closed = []
    for sock in socks:
        try:
            if sock.recv(1) == b"":
                closed.append(sock)
        except BlockingIOError:
            pass
        except OSError:
            closed.append(sock)
    return closed


def hold_idle_connections(port, count):
    """`count` idle keep-alive connections, all open at once.

    While connections are being opened, the event MPM may close a child's
    keep-alive connections (whenever all its threads happen to be busy):
    those are replaced, a few times at most."""
    socks = open_idle_connections(port, count)
    try:
        for _ in range(5):
            time.sleep(0.5)
            closed = closed_by_server(socks)
            if not closed:
                break
            for sock in closed:
                sock.close()
            gone = set(closed)
            socks = [sock for sock in socks if sock not in gone]
            socks += open_idle_connections(port, len(closed))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def children_fds(server):
    """Open file descriptors of the Apache children (None: unreadable)."""
    counts = [fd_count(pid) for pid in server.worker_pids()]
    return None if None in counts else sum(counts)


def wait_children_closed(server, baseline):
    if baseline is None:
        time.sleep(5)
        return
    harness.wait_for(lambda: (children_fds(server) or 0) < baseline + 100,
                     what="the Apache children to close the connections")


CRASH = re.compile(r".*(exit signal|Segmentation fault|died .*signal).*")


@pytest.mark.daemon
def test_idle_keepalive_connections_10000_against_daemon_mode(httpd_env,
                                                              many_files):
    with httpd_env.server(IDLE_CONFIG, mpm="event",
                          mpm_settings=MANY_CONNECTIONS, wsgi_mode="daemon",
                          daemon_processes=2, daemon_threads=4,
                          name="hostile-idle") as srv:
        assert_server_fine(srv)
        baseline = children_fds(srv)
        daemons = srv.daemon_pids()
        daemon_rss = rss_of(daemons)
        socks = hold_idle_connections(srv.port, IDLE_CONNECTIONS)
        try:
            # All of them held open while idle: none closed by the server.
            time.sleep(1.0)
            assert len(closed_by_server(socks)) == 0
            # A fresh client is answered while they are open.
            with srv.connect(timeout=10) as sock:
                sock.sendall(head("GET", "/app/hello"))
                raw = RawResponse(read_until_close(sock))
            assert (raw.status, raw.body) == (200, b"hello\n"), raw
            # Idle connections still work: a second request on some.
            for sock in socks[::IDLE_CONNECTIONS // 20]:
                sock.setblocking(True)
                sock.settimeout(10)
                sock.sendall(head("GET", "/app/hello", close=False))
                data = b""
                while not data.endswith(HELLO_RESPONSE_END):
                    piece = sock.recv(4096)
                    assert piece, "idle connection closed: %r" % data
                    data += piece
                assert data.startswith(b"HTTP/1.1 200 "), data
                sock.setblocking(False)
            # The daemon processes are the same, and hold a bounded number
            # of connections from the Apache children, not one per client.
            assert srv.daemon_pids() == daemons
            fds = {pid: fd_count(pid) for pid in daemons}
            for pid, count in fds.items():
                assert count is None or count < 500, fds
            grown = {pid: kb - daemon_rss.get(pid, kb)
                     for pid, kb in rss_of(daemons).items()}
            # Under AddressSanitizer every allocation carries redzones and
            # freed memory sits in its quarantine, so the bound is wider.
            bound = (64 if harness.sanitize_enabled() else 16) * 1024
            assert max(grown.values(), default=0) < bound, grown
        finally:
            for sock in socks:
                sock.close()
            # Let the children finish closing them before the server is
            # stopped: httpd's event MPM (2.4.71 here) may crash when told
            # to stop while it is closing thousands of connections, with or
            # without mod_tether loaded.
            wait_children_closed(srv, baseline)
        # Once they are gone the server goes on as before.
        assert_server_fine(srv)
        crash = CRASH.search(srv.error_log())
        assert crash is None, crash.group(0)
