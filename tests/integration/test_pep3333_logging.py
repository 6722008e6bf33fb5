"""wsgi.errors, print() and the logging module reach Apache's error log,
each line tagged with the request that wrote it (its client's address:
"[client ...]" from an Apache child, "[remote ...]" from a daemon)."""

import itertools

import pytest

CONFIG = """
WSGIScriptAlias /log @APPS@/logging_app.wsgi
"""

_tokens = itertools.count(1)


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="logging-" + server_variant.name) as srv:
        yield srv


def log_through(server, route):
    """Asks the app to log a fresh token; returns (token, log mark)."""
    token = "tok%d" % next(_tokens)
    mark = server.log_mark()
    resp = server.get("/log/%s?token=%s" % (route, token))
    assert resp.status == 200, resp
    return token, mark


@pytest.mark.parametrize("route,channel", [
    ("errors", "errors-channel"),
    ("print", "print-channel"),
    ("stderr", "stderr-channel"),
    ("logging", "logging-channel"),
])
def test_logging_channel_reaches_error_log_tagged_with_request(
        server, route, channel):
    token, mark = log_through(server, route)
    match = server.wait_for_log(server.client_tag
                                + r".*%s %s$" % (channel, token),
                                since=mark)
    assert match


def test_logging_wsgi_errors_writelines_logs_each_line(server):
    token, mark = log_through(server, "errors-writelines")
    server.wait_for_log(server.client_tag
                        + r".*writelines-channel %s one$" % token, since=mark)
    server.wait_for_log(server.client_tag
                        + r".*writelines-channel %s two$" % token, since=mark)


def test_logging_wsgi_errors_partial_line_flushed_at_request_end(server):
    token, mark = log_through(server, "errors-partial")
    server.wait_for_log(server.client_tag + r".*partial-channel %s$" % token,
                        since=mark)


def test_logging_line_tagged_with_the_requests_own_client_port(server):
    conn = server.http()
    try:
        conn.connect()
        port = conn.sock.getsockname()[1]
        mark = server.log_mark()
        conn.request("GET", "/log/print?token=own-port")
        assert conn.getresponse().read() == b"logged\n"
    finally:
        conn.close()
    server.wait_for_log(server.client_tag_for_port(port)
                        + r".*print-channel own-port$", since=mark)
