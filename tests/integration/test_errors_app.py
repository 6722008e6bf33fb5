"""Broken applications: a 500 (or a cut-off response), the error logged with
its request, and a server that goes on serving."""

import http.client
import re

import pytest

from harness import decode_chunked

CONFIG = """
WSGIScriptAlias /broken @APPS@/broken_app.wsgi
"""

EXCEPTION = r"(TypeError|ValueError|AssertionError|RuntimeError)"


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="errors-" + server_variant.name) as srv:
        yield srv


@pytest.fixture
def reference(httpd_env):
    return httpd_env.reference


def assert_still_serving(server):
    resp = server.get("/broken/ok")
    assert (resp.status, resp.body) == (200, b"still serving\n")


def assert_logged_with_request(server, mark, pattern):
    """A line matching `pattern` that is tagged with the client; its text."""
    server.wait_for_log(server.client_tag + r".*" + pattern, since=mark)
    return server.error_log(since=mark)


def assert_error_logged_for_request(server, mark):
    server.wait_for_log(r"\[[\w.]+:error\] \[pid [^\]]*\] "
                        + server.client_tag, since=mark)


def assert_traceback(log, function):
    assert "Traceback (most recent call last):" in log, log
    assert re.search(r'File ".*broken_app\.wsgi", line \d+, in %s'
                     % function, log), log


# --- failures before any output: 500 -----------------------------------------

# (path, what the log must say, the app function in the traceback or None
# when the error is raised by the server after the app returned)
FAILS_BEFORE_OUTPUT = [
    ("/raise-before-start",
     r"RuntimeError: broken-app: raised before start_response",
     "raise_before_start"),
    ("/raise-after-start",
     r"RuntimeError: broken-app: raised after start_response",
     "raise_after_start"),
    ("/raise-in-first-item",
     r"RuntimeError: broken-app: raised by the first item", "__next__"),
    ("/no-start-response", r"start_response", None),
    ("/status-not-str", r"TypeError", "status_not_str"),
    ("/status-bytes", r"TypeError", "status_bytes"),
    ("/status-abc", r"ValueError", "status_no_reason_space"),
    ("/status-two-digits", r"ValueError", "status_two_digits"),
    ("/headers-not-list", r"TypeError", "headers_not_list"),
    ("/header-name-not-str", r"TypeError", "header_name_not_str"),
    ("/header-value-not-str", r"TypeError", "header_value_not_str"),
    ("/header-value-not-latin1", r"(UnicodeEncodeError|ValueError)",
     "header_value_not_latin1"),
    ("/content-length-invalid", r"ValueError", "content_length_invalid"),
    ("/content-length-negative", r"ValueError", "content_length_negative"),
    ("/body-str", r"TypeError", None),
    ("/not-iterable", r"TypeError", None),
]


@pytest.mark.parametrize("path,logged,function", FAILS_BEFORE_OUTPUT,
                         ids=[case[0].strip("/") for case in
                              FAILS_BEFORE_OUTPUT])
def test_errors_app_failure_before_output_gives_500_and_is_logged(
        server, reference, path, logged, function):
    mark = server.log_mark()
    resp = server.get("/broken" + path)
    assert resp.status == 500, resp
    assert b"accepted" not in resp.body
    log = assert_logged_with_request(server, mark, logged)
    if function and not reference:
        assert_traceback(log, function)
    assert_still_serving(server)


def test_errors_start_response_twice_without_exc_info_is_an_error(
        server, tether_only):
    # PEP 3333: calling start_response again without exc_info is a fatal
    # error.  (mod_wsgi lets the second call through; we do not.)
    mark = server.log_mark()
    resp = server.get("/broken/start-twice")
    assert resp.status == 500, resp
    log = assert_logged_with_request(server, mark, EXCEPTION)
    assert_traceback(log, "start_twice")
    assert_still_serving(server)


# --- header injection --------------------------------------------------------

@pytest.mark.parametrize("path", ["/header-value-crlf", "/header-value-lf",
                                  "/header-name-crlf"])
def test_errors_newline_in_header_does_not_split_the_response(server, path):
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken" + path)
    assert raw.status == 500, raw
    assert "x-injected" not in raw.header_names()
    assert b"\nX-Injected" not in raw.data
    assert_error_logged_for_request(server, mark)
    assert_still_serving(server)


def test_errors_control_character_in_header_value_rejected(server):
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken/header-value-control")
    assert raw.status == 500, raw
    assert "x-control" not in raw.header_names()
    assert b"\x01" not in raw.data and b"\x7f" not in raw.data
    assert_error_logged_for_request(server, mark)
    assert_still_serving(server)


# Characters a response header name (an HTTP token) cannot hold, besides CR
# and LF: Tether refuses every non-token character; mod_wsgi refuses control
# characters and the space, but takes a NUL as the end of the name and lets
# separators such as ":" through.
BAD_NAME_CHARS = [
    ("nul", 0x00, True), ("soh", 0x01, False), ("tab", 0x09, False),
    ("esc", 0x1b, False), ("del", 0x7f, False), ("space", 0x20, False),
    ("colon", 0x3a, True),
]


@pytest.mark.parametrize("char,tether_only_case",
                         [case[1:] for case in BAD_NAME_CHARS],
                         ids=[case[0] for case in BAD_NAME_CHARS])
def test_errors_bad_character_in_header_name_rejected_with_traceback(
        server, reference, char, tether_only_case):
    if reference and tether_only_case:
        pytest.skip("mod_wsgi does not refuse this character")
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken/header-name-char?char=%02x"
                             % char)
    assert raw.status == 500, raw
    assert b"X-Bad" not in raw.data
    assert b"was accepted" not in raw.data
    log = assert_logged_with_request(server, mark, r"ValueError")
    if not reference:
        assert re.search(r"ValueError: invalid response header name "
                         r"'X-Bad.*Name': must be an HTTP token", log), log
        assert_traceback(log, "header_name_char")
    assert_still_serving(server)


# --- failures after output started -------------------------------------------

def test_errors_str_body_item_after_output_cuts_the_response(server):
    marker = server.scratch_path("body-str-later")
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken/body-str-later?marker=" + marker)
    assert raw.status == 200, raw
    data, complete = decode_chunked(raw.body)
    assert data == b"bytes first;"
    assert not complete, "a failed response must not end like a good one"
    assert_logged_with_request(server, mark, r"TypeError")
    assert server.wait_for_json(marker)["closed"] is True
    assert_still_serving(server)


def test_errors_iterator_raising_mid_stream_leaves_chunked_body_unterminated(
        server, reference):
    marker = server.scratch_path("raise-mid-stream")
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken/raise-mid-stream?marker="
                             + marker)
    assert raw.status == 200, raw
    assert raw.header("Transfer-Encoding") == "chunked"
    data, complete = decode_chunked(raw.body)
    assert data == b"first chunk;second chunk;"
    assert not complete, "no terminating 0-chunk after a failure: %r" \
        % raw.body
    log = assert_logged_with_request(
        server, mark, r"RuntimeError: broken-app: raised mid-stream")
    if not reference:
        assert_traceback(log, "__next__")
    assert server.wait_for_json(marker)["closed"] is True
    assert_still_serving(server)


# --- Content-Length mismatches -----------------------------------------------

def test_errors_body_longer_than_content_length_is_truncated(
        server, reference):
    mark = server.log_mark()
    raw = server.raw_request("GET", "/broken/body-longer")
    assert raw.status == 200, raw
    assert raw.header("Content-Length") == "5"
    assert raw.body == b"01234"
    if not reference:
        # mod_wsgi drops the excess silently; we say so in the log.
        assert_logged_with_request(server, mark, r"[Cc]ontent.[Ll]ength")
    assert_still_serving(server)


def test_errors_body_shorter_than_content_length_is_incomplete(
        server, reference):
    mark = server.log_mark()
    conn = server.http()
    try:
        conn.request("GET", "/broken/body-shorter")
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    assert info.value.partial == b"01234"
    if not reference:
        log = assert_logged_with_request(
            server, mark, r"TETHER0402: .* returned 5 bytes, less than its "
                          r"Content-Length of 10")
        assert re.search(r"\[[\w.]+:error\] \[pid [^\]]*\] "
                         + server.client_tag + r" TETHER0402: ", log), log
    assert_still_serving(server)
