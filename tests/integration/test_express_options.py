"""tether-express start-server with mod_wsgi-express's site options, end to
end: --server-name/--server-alias, --host-access-script, --error-override
with --error-document, --add-handler, --compress-responses, and
--auth-user-script with Basic authentication.

The application, hook scripts and document root are written into each
server's work directory (0755, files 0644, so Apache's children can read
them when the suite runs as root).  Servers are run and stopped as in
test_express.py, whose ExpressServer this module reuses.
"""

import base64
import gzip
import http.client
import json
import os
import shutil

import pytest

import harness
from test_express import express_server, write_file


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """A mod_wsgi reference run skips: tether-express loads mod_tether."""


APP = '''
import json

TEXT = ("<p>tether compresses text responses</p>\\n" * 200).encode()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/missing":
        body = b"the application's own 404 page"
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [body]
    if path == "/text":
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("Content-Length", str(len(TEXT)))])
        return [TEXT]
    body = json.dumps({
        "app": "options",
        "path": path,
        "host": environ.get("HTTP_HOST"),
        "remote_user": environ.get("REMOTE_USER"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''

HOOKS = '''
def allow_access(environ, host):
    return not environ["REQUEST_URI"].startswith("/private")


def check_password(environ, user, password):
    if user == "spy":
        return password == "secret"
    return None
'''

HANDLER = '''
import os


def handle_request(environ, start_response):
    with open(environ["SCRIPT_FILENAME"], "rb") as f:
        source = f.read()
    body = b"handled " + os.path.basename(
        environ["SCRIPT_FILENAME"]).encode() + b": " + source
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''

ERROR_PAGE = "<h1>the site's 404 page</h1>\n"


def _site_files(server):
    write_file(server.path("app.wsgi"), APP)
    write_file(server.path("hooks.wsgi"), HOOKS)
    write_file(server.path("handler.wsgi"), HANDLER)
    write_file(server.path("docs", "errors", "404.html"), ERROR_PAGE)
    write_file(server.path("docs", "page.md"), "# a page\n")
    write_file(server.path("docs", "guide", "index.html"), "the guide\n")
    return ()


def request(server, path, host=None, headers=None):
    """(status, headers with lower-case names, raw body) of a GET."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                      timeout=harness.IO_TIMEOUT)
    try:
        headers = dict(headers or {})
        if host is not None:
            headers["Host"] = host
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                resp.read())
    finally:
        conn.close()


# --- one server: host names, access script, errors, handler, compression ---

NAME = "app.example.test"
ALIAS = "alias.example.test"


@pytest.fixture(scope="module")
def site():
    with express_server(
            "options-site", lambda s: s.path("app.wsgi"),
            "--document-root", lambda s: s.path("docs"),
            "--server-name", NAME, "--server-alias", ALIAS,
            "--host-access-script", lambda s: s.path("hooks.wsgi"),
            "--error-override",
            "--error-document", "404", "/errors/404.html",
            "--add-handler", ".md", lambda s: s.path("handler.wsgi"),
            "--compress-responses", "--directory-index", "index.html",
            make_files=_site_files) as server:
        yield server


class TestSiteOptions:

    def test_express_server_name_serves_its_names_only(self, site):
        for host in (NAME, ALIAS, "%s:%d" % (NAME, site.port)):
            status, _, body = request(site, "/hello", host=host)
            assert status == 200, (host, body)
            assert json.loads(body)["path"] == "/hello"
        status, _, _ = request(site, "/hello", host="other.example.test")
        assert status == 403
        assert site.summary()["Server URL"] == "http://%s:%d/" % (
            NAME, site.port)

    def test_express_host_access_script_denies(self, site):
        status, _, _ = request(site, "/private/x", host=NAME)
        assert status == 403
        status, _, _ = request(site, "/public", host=NAME)
        assert status == 200

    def test_express_error_override_serves_the_error_document(self, site):
        status, _, body = request(site, "/missing", host=NAME)
        assert status == 404
        assert body.decode() == ERROR_PAGE

    def test_express_add_handler_handles_document_root_files(self, site):
        status, _, body = request(site, "/page.md", host=NAME)
        assert status == 200, body
        assert body == b"handled page.md: # a page\n"

    def test_express_compress_responses_gzips_for_clients_that_accept_it(
            self, site):
        status, headers, body = request(
            site, "/text", host=NAME, headers={"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers.get("content-encoding") == "gzip"
        text = gzip.decompress(body)
        assert text.startswith(b"<p>tether compresses")
        assert len(body) < len(text)
        status, headers, plain = request(site, "/text", host=NAME)
        assert "content-encoding" not in headers
        assert plain == text


    def test_express_directory_index_serves_directories_holding_it(
            self, site):
        status, headers, _ = request(site, "/guide", host=NAME)
        assert status == 301
        assert headers["location"].endswith("/guide/")
        status, _, body = request(site, "/guide/", host=NAME)
        assert (status, body) == (200, b"the guide\n")
        # The document root itself holds no index.html: the application.
        status, _, body = request(site, "/", host=NAME)
        assert status == 200 and json.loads(body)["path"] == "/"


# --- log rotation and the start-up log ---------------------------------------

def test_express_rotate_logs_and_startup_log():
    if shutil.which("rotatelogs", path="%s:/usr/bin:/usr/sbin"
                    % os.environ.get("PATH", "")) is None:
        pytest.skip("Apache's rotatelogs is not installed (apache2-utils)")
    with express_server(
            "options-logs", lambda s: s.path("app.wsgi"), "--rotate-logs",
            "--access-log", "--startup-log", "--max-log-size", "1",
            make_files=_site_files) as server:
        status, _, _ = request(server, "/hello")
        assert status == 200
        logs = os.path.join(server.root, "logs")

        def rotated():
            names = os.listdir(logs)
            found = [n for n in names if n.startswith(("error_log.",
                                                       "access_log."))]
            return found if len(found) == 2 and any(
                n.startswith("access_log.") and os.path.getsize(
                    os.path.join(logs, n)) for n in found) else None
        harness.wait_for(rotated, what="rotated error and access logs")
        assert os.path.isfile(os.path.join(logs, "startup_log"))
        assert "(rotated)" in server.summary()["Error Log"]


# --- authentication ----------------------------------------------------------

def _basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return {"Authorization": "Basic " + token}


@pytest.fixture(scope="module")
def auth():
    with express_server(
            "options-auth", lambda s: s.path("app.wsgi"),
            "--auth-user-script", lambda s: s.path("hooks.wsgi"),
            "--health-url", "/-/health",
            make_files=_site_files) as server:
        yield server


class TestAuthUserScript:

    def test_express_auth_user_script_basic_challenges(self, auth):
        status, headers, _ = request(auth, "/")
        assert status == 401
        assert headers["www-authenticate"].startswith("Basic realm=")

    def test_express_auth_user_script_basic_accepts_the_password(self, auth):
        status, _, body = request(auth, "/me", headers=_basic("spy",
                                                              "secret"))
        assert status == 200, body
        assert json.loads(body)["remote_user"] == "spy"
        for user, password in (("spy", "wrong"), ("nobody", "secret")):
            status, _, _ = request(auth, "/me",
                                   headers=_basic(user, password))
            assert status == 401, user

    def test_express_auth_user_script_leaves_health_url_open(self, auth):
        status, _, body = request(auth, "/-/health")
        assert status == 200, body
        assert os.path.exists(auth.conf_path)
