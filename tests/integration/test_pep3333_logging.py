"""wsgi.errors, print() and the logging module reach Apache's error log,
each line tagged with the request that wrote it (its client's address:
"[client ...]" from an Apache child, "[remote ...]" from a daemon)."""

import itertools
import os
import re

import pytest

import harness

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


# --- a virtual host with its own ErrorLog --------------------------------------

VHOST_CONFIG = """
<VirtualHost *>
    ServerName main.test
    WSGIScriptAlias /log @APPS@/logging_app.wsgi
</VirtualHost>
<VirtualHost *>
    ServerName vhost.test
    ErrorLog "@ROOT@/logs/vhost_error_log"
    WSGIScriptAlias /log @APPS@/logging_app.wsgi
</VirtualHost>
"""


@pytest.fixture(scope="module")
def vhost_server(httpd_env, mpm):
    with httpd_env.server(VHOST_CONFIG, mpm=mpm,
                          name="logging-vhost-" + mpm) as srv:
        yield srv


def _log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_log(path, since):
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


@pytest.mark.parametrize("route,channel", [
    ("errors", "errors-channel"),
    ("print", "print-channel"),
    ("stderr", "stderr-channel"),
    ("logging", "logging-channel"),
])
def test_logging_channel_reaches_the_virtual_hosts_own_error_log(
        vhost_server, route, channel):
    srv = vhost_server
    vhost_log = os.path.join(srv.root, "logs", "vhost_error_log")
    line = re.compile(srv.client_tag + r".*%s (\S+)$" % channel, re.M)
    for host, own_log, other_log in (
            ("vhost.test", vhost_log, srv.error_log_path),
            ("main.test", srv.error_log_path, vhost_log)):
        token = "vh%d" % next(_tokens)
        marks = {p: _log_size(p) for p in (vhost_log, srv.error_log_path)}
        resp = srv.get("/log/%s?token=%s" % (route, token),
                       headers={"Host": host})
        assert resp.status == 200, resp
        harness.wait_for(
            lambda: token in line.findall(_read_log(own_log, marks[own_log])),
            what="%s's %s line in %s" % (host, channel, own_log))
        # Apache has written the line: a stray copy would be there by now.
        assert token not in _read_log(other_log, marks[other_log]), host
