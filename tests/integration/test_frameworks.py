"""Real frameworks served end to end by tether-express, in daemon and
embedded mode: a Django project made here with `django-admin startproject`
(admin, static files served by Apache, a CSRF-protected form with a file
upload, SQLite written by Apache's user), the project started through
`manage.py runtether`, and the Flask application of tests/apps.

Servers are run and stopped as in test_express.py (whose ExpressServer
this module reuses).
"""

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest

import harness
from test_express import (ExpressServer, accepting, clean_env,
                          express_server, wait_gone)

MODES = {"daemon": (), "embedded": ("--embedded-mode",)}

django = pytest.importorskip(
    "django", reason="Django is not installed (pip install '.[test]')")


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """A mod_wsgi reference run skips: tether-express loads mod_tether."""


# --- a small HTTP client with cookies ----------------------------------------

class Client:
    """HTTP/1.1 to 127.0.0.1:port, keeping the cookies it is sent."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % item
                                          for item in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=harness.IO_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            for name, value in resp.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key.strip()] = rest.split(";")[0]
            return resp.status, {k.lower(): v for k, v
                                 in resp.getheaders()}, data
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)


def multipart(fields, files):
    """(content type, body) of a multipart/form-data request."""
    boundary = "tether-%s" % uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\""
                      "\r\n\r\n%s\r\n" % (boundary, name, value)).encode())
    for name, (filename, data) in files.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                      "filename=\"%s\"\r\nContent-Type: "
                      "application/octet-stream\r\n\r\n"
                      % (boundary, name, filename)).encode() + data + b"\r\n")
    parts.append(("--%s--\r\n" % boundary).encode())
    return "multipart/form-data; boundary=%s" % boundary, b"".join(parts)


# --- the Django project ------------------------------------------------------

SETTINGS_TAIL = '''
# --- added by tests/integration/test_frameworks.py ---
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS += ["tether", "mysite"]
STATIC_ROOT = BASE_DIR / "static_root"
DATABASES["default"]["NAME"] = BASE_DIR / "data" / "db.sqlite3"
'''

VIEWS = '''\
import hashlib

from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.contrib.auth.models import User


def upload(request):
    if request.method == "POST":
        document = request.FILES["document"]
        data = document.read()
        return JsonResponse({
            "name": document.name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "note": request.POST.get("note"),
            "users": User.objects.count(),
        })
    token = get_token(request)
    return HttpResponse(
        '<form method="post" enctype="multipart/form-data">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="%s">'
        '<input type="file" name="document"></form>' % token)


def visit(request):
    """Writes to the database: a session (in SQLite) counting visits."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})
'''

URLS_TAIL = '''
# --- added by tests/integration/test_frameworks.py ---
from mysite import views  # noqa: E402

urlpatterns += [path("upload/", views.upload), path("visit/", views.visit)]
'''


def _manage(project, *args):
    result = subprocess.run([sys.executable, "manage.py"] + list(args),
                            cwd=project, env=clean_env(),
                            capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def django_project():
    """A Django project in a 0755 directory under /tmp: migrated SQLite in
    data/ (writable by Apache's user), static files collected."""
    base = tempfile.mkdtemp(prefix="tether-django-", dir="/tmp")
    os.chmod(base, 0o755)
    project = os.path.join(base, "project")
    os.mkdir(project)
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite",
                    project], check=True, capture_output=True, timeout=300,
                   env=clean_env())
    package = os.path.join(project, "mysite")
    with open(os.path.join(package, "settings.py"), "a") as f:
        f.write(SETTINGS_TAIL)
    with open(os.path.join(package, "urls.py"), "a") as f:
        f.write(URLS_TAIL)
    with open(os.path.join(package, "views.py"), "w") as f:
        f.write(VIEWS)
    data = os.path.join(project, "data")
    os.mkdir(data)
    _manage(project, "migrate", "--noinput")
    _manage(project, "collectstatic", "--noinput")
    for dirpath, _, filenames in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    # SQLite writes the database and a journal beside it.
    os.chmod(data, 0o777)
    os.chmod(os.path.join(data, "db.sqlite3"), 0o666)
    yield project
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=sorted(MODES))
def django_server(request, django_project):
    with express_server(
            "django-" + request.param, "mysite.wsgi",
            "--application-type", "module",
            "--working-directory", django_project,
            "--url-alias", "/static/",
            os.path.join(django_project, "static_root"),
            *MODES[request.param]) as srv:
        srv.mode = request.param
        yield srv


class TestDjango:

    def test_django_admin_login_page_loads(self, django_server):
        status, headers, body = Client(django_server.port).get(
            "/admin/login/?next=/admin/")
        assert status == 200, body[:2000]
        assert b"Django administration" in body
        assert b'name="csrfmiddlewaretoken"' in body
        assert headers["content-type"].startswith("text/html")

    def test_django_admin_redirects_to_login(self, django_server):
        status, headers, _ = Client(django_server.port).get("/admin/")
        assert status == 302
        assert headers["location"].startswith("/admin/login/")

    def test_django_static_css_is_served_by_apache(self, django_server):
        status, headers, body = Client(django_server.port).get(
            "/static/admin/css/base.css")
        assert status == 200
        assert headers["content-type"].startswith("text/css")
        with open(os.path.join(django.__path__[0], "contrib", "admin",
                               "static", "admin", "css", "base.css"),
                  "rb") as f:
            assert body == f.read()
        # Apache's static file handler (Django never serves static files
        # from its WSGI application, least of all with DEBUG off).
        assert "etag" in headers and "last-modified" in headers
        status, _, _ = Client(django_server.port).get(
            "/static/admin/css/absent.css")
        assert status == 404

    def test_django_csrf_post_with_file_upload(self, django_server):
        client = Client(django_server.port)
        status, _, page = client.get("/upload/")
        assert status == 200
        assert "csrftoken" in client.cookies
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"',
                          page).group(1).decode()
        data = os.urandom(3 * 1024 * 1024 + 17)   # past the in-memory limit
        content_type, body = multipart(
            {"csrfmiddlewaretoken": token, "note": "caf\u00e9"},
            {"document": ("report.bin", data)})
        status, _, answer = client.request(
            "POST", "/upload/", body, {"Content-Type": content_type})
        assert status == 200, answer[:2000]
        answer = json.loads(answer)
        assert answer == {"name": "report.bin", "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest(),
                          "note": "caf\u00e9", "users": 0}

    def test_django_post_without_csrf_token_is_refused(self, django_server):
        content_type, body = multipart({"note": "x"},
                                       {"document": ("a.txt", b"abc")})
        status, _, _ = Client(django_server.port).request(
            "POST", "/upload/", body, {"Content-Type": content_type})
        assert status == 403

    def test_django_sessions_write_to_sqlite(self, django_server):
        client = Client(django_server.port)
        assert json.loads(client.get("/visit/")[2]) == {"visits": 1}
        assert json.loads(client.get("/visit/")[2]) == {"visits": 2}


# --- manage.py runtether -----------------------------------------------------

@contextlib.contextmanager
def runtether(project, *args):
    """`python manage.py runtether` in the project, as an ExpressServer
    (its stop and checks), its output in the server's work directory."""
    server = ExpressServer("runtether")
    try:
        server.port = harness.free_port()
        argv = [sys.executable, "manage.py", "runtether", "--host",
                "127.0.0.1", "--port", str(server.port), "--server-root",
                server.root] + list(args)
        with open(server.stdout_path, "w") as out, \
                open(server.stderr_path, "w") as err:
            server.proc = subprocess.Popen(argv, cwd=project,
                                           env=clean_env(server.sanitizer_dir),
                                           stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=err)
        harness.wait_for(
            lambda: server.proc.poll() is not None or (
                server.read_pid() is not None and accepting(server.port)),
            deadline=harness.START_DEADLINE, what="runtether to start")
        assert server.proc.poll() is None, server.output()
        server.httpd_pid = server.read_pid()
        yield server
    except BaseException:
        server.saw_failure = True
        raise
    finally:
        server.close()


def test_django_runtether_serves_the_project_and_static_root(
        django_project):
    with runtether(django_project, "--embedded-mode") as server:
        summary = server.summary()
        assert summary["Application"].startswith("module mysite.wsgi "
                                                 "(callable application)")
        assert summary["Operating Mode"] == "embedded"
        client = Client(server.port)
        status, _, body = client.get("/admin/login/")
        assert status == 200 and b"Django administration" in body
        status, headers, _ = client.get("/static/admin/css/base.css")
        assert status == 200 and "etag" in headers
        status, _, _ = client.get("/visit/")
        assert status == 200
        # SIGTERM to manage.py stops Apache (start-server's supervisor).
        procs = server.apache_pids()
        assert server.signal_and_wait(signal.SIGTERM) == 0
        wait_gone(procs, "Apache started by runtether")


def test_django_runtether_help_lists_start_server_options(django_project):
    result = _manage(django_project, "help", "runtether")
    for option in ("--port", "--https-port", "--reload-on-changes",
                   "--embedded-mode", "--url-alias"):
        assert option in result.stdout


def test_import_tether_does_not_import_django():
    code = "import sys, tether, tether.cli; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=clean_env(), timeout=60, check=True)
    assert out.stdout.strip() == "False"


# --- Flask -------------------------------------------------------------------

def _flask_files(server):
    shutil.copy(os.path.join(harness.APPS_SOURCE, "flask_app.wsgi"),
                server.path("flask_app.wsgi"))
    os.chmod(server.path("flask_app.wsgi"), 0o644)
    return ()


@pytest.fixture(scope="module", params=sorted(MODES))
def flask_server(request):
    pytest.importorskip("flask")
    with express_server(
            "flask-" + request.param, lambda s: s.path("flask_app.wsgi"),
            "--mount-point", "/flask", *MODES[request.param],
            make_files=_flask_files) as srv:
        yield srv


class TestFlask:

    def test_flask_routes_under_the_mount_point(self, flask_server):
        client = Client(flask_server.port)
        assert client.get("/flask/")[::2] == (200, b"flask index")
        assert client.get("/flask/hello/tether")[::2] == (200,
                                                          b"hello tether")
        status, _, body = client.get("/flask/json")
        assert status == 200
        assert json.loads(body) == {"items": [1, 2, 3], "method": "GET",
                                    "script_root": "/flask"}
        assert client.get("/flask/absent")[0] == 404

    def test_flask_form_and_json_posts(self, flask_server):
        client = Client(flask_server.port)
        status, _, body = client.request(
            "POST", "/flask/form", "name=ada&colour=blue",
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body) == (200, b"form name=ada colour=blue")
        status, _, body = client.request(
            "POST", "/flask/echo-json", json.dumps({"a": [1, "b"]}),
            {"Content-Type": "application/json"})
        assert status == 200
        assert json.loads(body) == {"received": {"a": [1, "b"]}}

    def test_flask_url_for_external_uses_host_and_mount(self, flask_server):
        status, _, body = Client(flask_server.port).get("/flask/where")
        assert status == 200
        assert body.decode() == "http://127.0.0.1:%d/flask/where" \
            % flask_server.port
