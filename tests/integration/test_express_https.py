"""tether-express start-server with --https-port (mod_ssl), --http2
(mod_http2), --health-url and --reload-on-changes, end to end.

The certificate is self-signed, made in the test with the openssl command
line; the clients trust exactly it.  Servers are run and stopped as in
test_express.py (whose ExpressServer this module reuses).
"""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import time

import pytest

import harness
from test_express import express_server, write_file

APP = "client_app.wsgi"


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """A mod_wsgi reference run skips: tether-express loads mod_tether."""


def make_certificate(directory, name="server"):
    """A self-signed certificate for localhost and 127.0.0.1:
    (DIRECTORY/NAME.crt, DIRECTORY/NAME.key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate "
                    "for the HTTPS tests")
    crt = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True, timeout=60)
    os.chmod(crt, 0o644)
    os.chmod(key, 0o600)
    return crt, key


def tls_context(crt):
    context = ssl.create_default_context(cafile=crt)
    context.check_hostname = True
    return context


def https_request(port, crt, path="/", method="GET"):
    """(status, headers dict, body) of an HTTPS request to 127.0.0.1."""
    conn = http.client.HTTPSConnection("127.0.0.1", port,
                                       timeout=harness.IO_TIMEOUT,
                                       context=tls_context(crt))
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def http_request(port, path="/", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port,
                                      timeout=harness.IO_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def curl_has_http2():
    curl = shutil.which("curl")
    if curl is None:
        return None
    out = subprocess.run([curl, "-V"], capture_output=True, text=True,
                         timeout=30).stdout
    features = next((line for line in out.splitlines()
                     if line.startswith("Features:")), "")
    return curl if "HTTP2" in features.split() else None


def curl_http_version(args):
    """The HTTP version curl used for a request (e.g. '2'), and the body."""
    curl = curl_has_http2()
    if curl is None:
        pytest.skip("no curl with HTTP/2 support to make an HTTP/2 request")
    out = subprocess.run(
        [curl, "-sS", "--max-time", "60", "-w", "\n%{http_version} "
         "%{http_code}"] + args, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition("\n")
    version, code = tail.split()
    assert code == "200", out.stdout
    return version, json.loads(body)


def _certificate_files(server):
    make_certificate(server.work)
    return ()


# --- HTTPS in daemon mode, with HTTP/2 and a health URL ----------------------

def https_server(name, *options):
    """express_server() of the client app on a free HTTPS port too, with a
    certificate made for it, and `options`."""
    return express_server(
        name, lambda s: os.path.join(s.apps, APP),
        "--https-port", lambda s: harness.free_port(),
        "--ssl-certificate-file", lambda s: s.path("server.crt"),
        "--ssl-certificate-key-file", lambda s: s.path("server.key"),
        *options, make_files=_certificate_files)


@pytest.fixture(scope="module")
def https():
    with https_server("https", "--ssl-environment", "--http2",
                      "--health-url", "/-/health") as srv:
        yield _https_ready(srv)


def _https_ready(srv):
    """srv, with its HTTPS port and certificate, once that port answers."""
    argv = srv.proc.args
    srv.https_port = int(argv[argv.index("--https-port") + 1])
    srv.crt = srv.path("server.crt")
    harness.wait_for(lambda: _accepting_tls(srv),
                     what="the HTTPS port of %s" % srv.name)
    return srv


def _accepting_tls(srv):
    try:
        https_request(srv.https_port, srv.crt, "/-/health")
        return True
    except OSError:
        return False


class TestHttpsDaemonMode:

    def test_express_https_serves_the_app_with_https_url_scheme(self, https):
        status, _, body = https_request(https.https_port, https.crt,
                                        "/over/tls")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["url_scheme"] == "https"
        assert answer["https"] in ("1", "on")
        assert answer["path_info"] == "/over/tls"
        assert answer["server_port"] == str(https.https_port)
        # In a daemon process, not in Apache's children.
        assert answer["pid"] in https.daemon_pids()

    def test_express_https_ssl_environment_passes_ssl_variables(self, https):
        _, _, body = https_request(https.https_port, https.crt)
        assert json.loads(body)["ssl_protocol"].startswith("TLSv1")

    def test_express_https_plain_port_still_serves_http(self, https):
        status, _, body = http_request(https.port)
        assert status == 200
        answer = json.loads(body)
        assert answer["url_scheme"] == "http"
        assert answer["ssl_protocol"] is None

    def test_express_https_summary_names_the_https_url(self, https):
        summary = https.summary()
        assert summary["HTTPS URL"] == "https://127.0.0.1:%d/" \
            % https.https_port
        assert summary["Protocols"].startswith("h2 ")
        with open(https.conf_path) as f:
            conf = f.read()
        assert "LoadModule ssl_module" in conf
        assert "LoadModule http2_module" in conf
        assert "Protocols h2 h2c http/1.1" in conf

    def test_express_http2_prior_knowledge_on_the_plain_port(self, https):
        version, answer = curl_http_version(
            ["--http2-prior-knowledge",
             "http://127.0.0.1:%d/h2c" % https.port])
        assert version == "2"
        assert answer["protocol"] == "HTTP/2.0"
        assert answer["url_scheme"] == "http"

    def test_express_http2_over_tls_by_alpn(self, https):
        version, answer = curl_http_version(
            ["--http2", "--cacert", https.crt,
             "https://localhost:%d/h2" % https.https_port])
        assert version == "2"
        assert answer["protocol"] == "HTTP/2.0"
        assert answer["url_scheme"] == "https"

    def test_express_health_url_answers_ok_on_both_ports(self, https):
        status, headers, body = http_request(https.port, "/-/health")
        assert (status, body) == (200, b"OK\n")
        assert headers["Cache-Control"] == "no-store"
        status, _, body = https_request(https.https_port, https.crt,
                                        "/-/health")
        assert (status, body) == (200, b"OK\n")
        # Everything else still reaches the application.
        status, _, body = http_request(https.port, "/-/healthy")
        assert json.loads(body)["path_info"] == "/-/healthy"


# --- HTTPS only, embedded mode, --ssl-certificate ----------------------------

@pytest.fixture(scope="module")
def https_only():
    with express_server(
            "https-only", lambda s: os.path.join(s.apps, APP),
            "--embedded-mode",
            "--https-port", lambda s: harness.free_port(),
            "--ssl-certificate", lambda s: s.path("server"),
            "--https-only", "--hsts-policy", "max-age=600",
            make_files=_certificate_files) as srv:
        yield _https_ready(srv)


class TestHttpsOnlyEmbeddedMode:

    def test_express_https_only_redirects_plain_http(self, https_only):
        status, headers, _ = http_request(https_only.port, "/a/b?c=d",
                                          headers={"Host": "localhost:%d"
                                                   % https_only.port})
        assert status == 301
        assert headers["Location"] == "https://localhost:%d/a/b?c=d" \
            % https_only.https_port

    def test_express_https_only_serves_https_with_hsts(self, https_only):
        status, headers, body = https_request(https_only.https_port,
                                              https_only.crt, "/x")
        assert status == 200
        answer = json.loads(body)
        assert answer["url_scheme"] == "https"
        # Embedded mode: an Apache child answered.
        assert answer["pid"] in harness.child_pids(https_only.httpd_pid)
        assert headers["Strict-Transport-Security"] == "max-age=600"


# --- HTTPS with --server-name: other host names are refused there too ------

@pytest.fixture(scope="module")
def https_named():
    with https_server("https-named", "--server-name", "localhost",
                      "--server-alias", "alias.test") as srv:
        yield _https_ready(srv)


def curl_status(name, port, path="/x"):
    """The status curl gets for https://NAME:PORT/PATH sent to 127.0.0.1
    (so the TLS server name and the Host header are both NAME)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("the curl command is not installed")
    out = subprocess.run(
        [curl, "-sS", "-k", "--max-time", "60", "-o", "/dev/null",
         "-w", "%{http_code}", "--resolve", "%s:%d:127.0.0.1" % (name, port),
         "https://%s:%d%s" % (name, port, path)],
        capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_express_https_server_name_serves_its_names_only(https_named):
    port = https_named.https_port
    assert curl_status("localhost", port) == 200
    assert curl_status("alias.test", port) == 200
    assert curl_status("other.test", port) == 403
    # The plain HTTP port does the same, as it did before.
    assert http_request(https_named.port, "/x",
                        headers={"Host": "localhost"})[0] == 200
    assert http_request(https_named.port, "/x",
                        headers={"Host": "other.test"})[0] == 403


def test_express_https_port_without_certificate_is_refused():
    from test_express import run_express
    result = run_express("setup-server", "--https-port", "8443",
                         "--server-root", "/tmp/tether-express-no-cert")
    assert result.returncode == 1
    assert "--https-port needs a certificate" in result.stderr
    assert not os.path.exists("/tmp/tether-express-no-cert")


# --- --reload-on-changes -----------------------------------------------------

RELOAD_APP = '''\
import helper_module


def application(environ, start_response):
    body = helper_module.answer().encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def _reload_files(server):
    code = server.path("code")
    write_file(os.path.join(code, "reload_app.wsgi"), RELOAD_APP)
    write_file(os.path.join(code, "helper_module.py"),
               "def answer():\n    return 'first'\n")
    return ("--working-directory", code)


def test_express_reload_on_changes_restarts_daemon_when_module_changes():
    with express_server(
            "reload", lambda s: s.path("code", "reload_app.wsgi"),
            "--reload-on-changes",
            make_files=_reload_files) as srv:
        status, _, body = http_request(srv.port)
        assert (status, body) == (200, b"first")
        old_pids = srv.wait_daemons(1)
        # The monitor notes each module's time as it first sees it, in its
        # first look a second after the process started.
        time.sleep(2.5)
        helper = srv.path("code", "helper_module.py")
        mtime = os.stat(helper).st_mtime
        write_file(helper, "def answer():\n    return 'second'\n")
        # A different modification time even on a coarse-grained clock.
        os.utime(helper, (mtime + 5, mtime + 5))
        deadline = time.monotonic() + harness.WAIT_DEADLINE
        while True:
            status, _, body = http_request(srv.port)
            if body == b"second" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (status, body) == (200, b"second"), srv.error_log()
        # A new daemon process took over; the old one is gone.
        new_pids = srv.wait_daemons(1, exclude=old_pids)
        assert not set(new_pids) & set(old_pids)
        assert "helper_module.py changed" in srv.error_log()
