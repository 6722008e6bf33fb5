"""tether-express options end to end, against the real Apache they
configure: --limit-request-body, --keep-alive-timeout, --include-file,
--passenv, --setup-only, --max-clients and --group.

Servers are run and stopped as in test_express.py, whose ExpressServer this
module reuses; the application is written into each server's work
directory (0755, files 0644, so Apache's children can read it when the
suite runs as root).
"""

import concurrent.futures
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import harness
from test_express import (COMMAND_DEADLINE, accepting, clean_env,
                          express_argv, express_server, http_get, make_workdir,
                          needs_root, processes_naming, wait_gone, web_user,
                          write_file)


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """A mod_wsgi reference run skips: tether-express loads mod_tether."""


APP = '''
import json
import os
import sys
import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/sleep/"):
        time.sleep(float(path[len("/sleep/"):]))
    length = None
    if environ["REQUEST_METHOD"] == "POST":
        length = len(environ["wsgi.input"].read())
    body = json.dumps({
        "app": "more-options",
        "path": path,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "body_length": length,
        "environ": {k: v for k, v in environ.items() if isinstance(v, str)},
        "os_environ": dict(os.environ),
        "warnoptions": list(sys.warnoptions),
        "switch_interval": sys.getswitchinterval(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''

INCLUDED = '''
# --include-file: a directive of this file must take effect.
<Location /denied-by-include>
    Require all denied
</Location>
'''


def _app_files(server):
    write_file(server.path("app.wsgi"), APP)
    write_file(server.path("extra.conf"), INCLUDED)
    return ()


def _app(server):
    return server.path("app.wsgi")


def post(port, path, body):
    """(status, raw body) of a POST with a Content-Length."""
    conn = socket.create_connection(("127.0.0.1", port),
                                    timeout=harness.IO_TIMEOUT)
    try:
        conn.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                     % (path.encode(), len(body)) + body)
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert match, data[:500]
    return int(match.group(1)), rest


def read_response(sock):
    """Reads one response with a Content-Length from a keep-alive socket:
    (status, {lower-case header: value}, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    assert len(body) == length, "more bytes than the Content-Length"
    return status, headers, body


def get_on(sock, path):
    """A GET on a kept-alive connection.  Apache answers an explicit
    "Connection: keep-alive" with a Keep-Alive header naming its timeout."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Connection: keep-alive\r\n\r\n" % path.encode())
    return read_response(sock)


def get_json(port, path="/"):
    status, body = http_get(port, path)
    assert status == 200, (status, body[:500])
    return json.loads(body)


# --- one server: body limit, keep-alive, include file, passenv --------------

BODY_LIMIT = 1000
KEEP_ALIVE = 5
PASSED = "passed through --passenv"
NOT_PASSED = "in the environment, not passed"


@pytest.fixture(scope="module")
def more():
    with express_server(
            "more", _app,
            "--limit-request-body", str(BODY_LIMIT),
            "--keep-alive-timeout", str(KEEP_ALIVE),
            "--include-file", lambda s: s.path("extra.conf"),
            "--passenv", "TETHER_TEST_PASSED",
            make_files=_app_files,
            env={"TETHER_TEST_PASSED": PASSED,
                 "TETHER_TEST_NOT_PASSED": NOT_PASSED}) as server:
        yield server


class TestHttpOptions:

    def test_express_limit_request_body_413_over_the_limit(self, more):
        with open(more.conf_path) as f:
            assert "\nLimitRequestBody %d\n" % BODY_LIMIT in f.read()
        status, body = post(more.port, "/upload", b"x" * BODY_LIMIT)
        assert status == 200, body[:500]
        assert json.loads(body)["body_length"] == BODY_LIMIT
        status, body = post(more.port, "/upload", b"x" * (BODY_LIMIT + 1))
        assert status == 413, body[:500]
        # The default (10 MB) would take this: the limit is the option's.
        status, body = post(more.port, "/upload", b"x" * (4 * BODY_LIMIT))
        assert status == 413, body[:500]
        assert get_json(more.port, "/")["app"] == "more-options"

    def test_express_keep_alive_timeout_closes_idle_connections(self, more):
        sock = socket.create_connection(("127.0.0.1", more.port),
                                        timeout=harness.IO_TIMEOUT)
        try:
            status, headers, _ = get_on(sock, "/first")
            assert status == 200
            assert "close" not in headers.get("connection", "").lower()
            assert headers.get("keep-alive", "").startswith(
                "timeout=%d" % KEEP_ALIVE), headers
            # Idle for less than the timeout: the connection is kept.
            time.sleep(1)
            status, headers, body = get_on(sock, "/second")
            assert status == 200
            assert json.loads(body)["path"] == "/second"
            # Idle for longer: the server closes it, not before the
            # timeout (the default of 2 seconds would close it sooner).
            idle_from = time.monotonic()
            sock.settimeout(KEEP_ALIVE + harness.WAIT_DEADLINE)
            try:
                rest = sock.recv(1)
            except ConnectionResetError:
                rest = b""
            idle = time.monotonic() - idle_from
            assert rest == b"", rest
            assert KEEP_ALIVE - 1.5 <= idle < KEEP_ALIVE + \
                harness.WAIT_DEADLINE, idle
        finally:
            sock.close()

    def test_express_include_file_directive_takes_effect(self, more):
        with open(more.conf_path) as f:
            assert 'IncludeOptional "%s"' % more.path("extra.conf") \
                in f.read()
        status, _ = http_get(more.port, "/denied-by-include/x")
        assert status == 403
        status, body = http_get(more.port, "/not-denied")
        assert status == 200, body[:500]

    def test_express_passenv_puts_the_variable_in_the_environ(self, more):
        answer = get_json(more.port, "/env")
        environ = answer["environ"]
        assert environ.get("TETHER_TEST_PASSED") == PASSED
        # Only the variables named by --passenv: not the whole environment.
        assert "TETHER_TEST_NOT_PASSED" not in environ
        # As with mod_wsgi-express, whose --passenv is Apache's PassEnv:
        # os.environ is the process environment, inherited from
        # tether-express through Apache, whatever --passenv names.
        assert answer["os_environ"].get("TETHER_TEST_PASSED") == PASSED


# --- Python options ----------------------------------------------------------

def test_express_python_warnings_and_switch_interval_reach_the_daemons():
    with express_server(
            "python-options", _app,
            "--python-warnings", "error::DeprecationWarning",
            "--python-warnings", "ignore::UserWarning",
            "--switch-interval", "0.25", "--orphan-interpreter",
            make_files=_app_files) as server:
        answer = get_json(server.port, "/")
        assert answer["warnoptions"] == ["error::DeprecationWarning",
                                         "ignore::UserWarning"]
        assert answer["switch_interval"] == pytest.approx(0.25)
        with open(server.conf_path) as f:
            assert "\nWSGIDestroyInterpreter Off\n" in f.read()


def test_express_python_eggs_and_switch_interval_in_embedded_mode():
    eggs = os.path.join(make_workdir("python-eggs"), "eggs")
    with express_server(
            "python-eggs", _app, "--embedded-mode", "--python-eggs", eggs,
            "--switch-interval", "0.5", make_files=_app_files) as server:
        answer = get_json(server.port, "/")
        # WSGIPythonEggs, as mod_wsgi-express writes it in embedded mode.
        assert answer["os_environ"].get("PYTHON_EGG_CACHE") == eggs
        assert answer["switch_interval"] == pytest.approx(0.5)
        assert answer["pid"] in harness.child_pids(server.httpd_pid)
        with open(server.conf_path) as f:
            assert '\nWSGIPythonEggs "%s"\n' % eggs in f.read()
        assert os.path.isdir(eggs)


# --- --setup-only ------------------------------------------------------------

def configtest(httpd_env, conf):
    """`httpd -t -f conf`, which must pass; its result.  (Under
    TETHER_TEST_SANITIZE httpd loads the sanitized module, which needs the
    sanitizer runtimes preloaded.)"""
    test = subprocess.run([httpd_env.install.binary, "-t", "-f", conf],
                          capture_output=True, text=True,
                          env=clean_env(harness.sanitizer_dir_of(
                              os.path.dirname(conf))),
                          timeout=harness.START_DEADLINE, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    return test


def test_express_setup_only_writes_server_root_and_starts_nothing(httpd_env):
    work = make_workdir("setup-only")
    root = os.path.join(work, "server-root")
    conf = os.path.join(root, "httpd.conf")
    pid_path = os.path.join(root, "httpd.pid")
    apachectl = os.path.join(root, "apachectl")
    script = write_file(os.path.join(work, "app.wsgi"), APP)
    port = harness.free_port()
    proc = subprocess.Popen(
        express_argv("start-server", script, "--setup-only",
                     "--host", "127.0.0.1", "--port", port,
                     "--server-root", root),
        cwd=work, env=clean_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok = False
    try:
        try:
            out, err = proc.communicate(timeout=COMMAND_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail("start-server --setup-only did not exit: it runs "
                        "Apache\n%s%s" % (out, err))
        assert proc.returncode == 0, out + err
        assert "Start it with: %s start" % apachectl in out
        assert os.path.isfile(conf)
        assert os.access(apachectl, os.X_OK)
        assert os.path.isdir(os.path.join(root, "logs"))
        # No Apache: no pid file, nobody on the port, no process running
        # the configuration.
        assert not os.path.exists(pid_path), "--setup-only started Apache"
        assert not accepting(port)
        assert processes_naming(conf) == []
        with open(conf) as f:
            assert "Listen 127.0.0.1:%d" % port in f.read()
        test = configtest(httpd_env, conf)
        ok = True
    finally:
        # Had it started Apache anyway, stop it by its pid file.
        with contextlib.suppress(OSError, ValueError):
            with open(pid_path) as f:
                pid = int(f.read())
            pids = [pid] + harness.child_pids(pid)
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(harness.HarnessError):
                wait_gone(pids, "Apache started by --setup-only to stop")
        if ok:
            shutil.rmtree(work, ignore_errors=True)


# --- --max-clients -----------------------------------------------------------

def _directive(conf_path, name):
    with open(conf_path) as f:
        values = re.findall(r"^%s (\d+)$" % name, f.read(), re.M)
    assert len(values) == 1, (name, values)
    return int(values[0])


def test_express_max_clients_in_daemon_mode_config_passes_configtest(
        httpd_env):
    work = make_workdir("max-clients-config")
    root = os.path.join(work, "server-root")
    conf = os.path.join(root, "httpd.conf")
    try:
        script = write_file(os.path.join(work, "app.wsgi"), APP)
        result = subprocess.run(
            express_argv("setup-server", script, "--max-clients", "37",
                         "--host", "127.0.0.1", "--port", harness.free_port(),
                         "--server-root", root),
            capture_output=True, text=True, cwd=work, env=clean_env(),
            stdin=subprocess.DEVNULL, timeout=COMMAND_DEADLINE, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        workers = _directive(conf, "MaxRequestWorkers")
        limit = _directive(conf, "ServerLimit")
        # Rounded up to whole Apache processes, never below the option.
        assert workers >= 37
        with open(conf) as f:
            threads = re.findall(r"^ThreadsPerChild (\d+)$", f.read(), re.M)
        if threads:             # a threaded MPM
            assert workers == limit * int(threads[0])
            assert workers - 37 < int(threads[0])
        else:                   # prefork
            assert workers == limit == 37
        test = configtest(httpd_env, conf)
        # Apache says nothing about adjusting the numbers it was given.
        assert "MaxRequestWorkers" not in test.stderr + test.stdout
        assert "ServerLimit" not in test.stderr + test.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


SLEEP = 1.5


def test_express_max_clients_caps_prefork_children_and_concurrency(
        httpd_env):
    """--embedded-mode --server-mpm prefork --processes 2 --threads 2 would
    run 4 single-threaded children; --max-clients 2 caps Apache at 2, so
    4 slow requests at once take two rounds."""
    if not httpd_env.has_mpm("prefork"):
        pytest.skip("this Apache has no mpm_prefork")
    with express_server(
            "max-clients", _app, "--embedded-mode", "--server-mpm", "prefork",
            "--processes", "2", "--threads", "2", "--max-clients", "2",
            make_files=_app_files) as server:
        assert _directive(server.conf_path, "MaxRequestWorkers") == 2
        assert _directive(server.conf_path, "ServerLimit") == 2
        children = harness.wait_for(
            lambda: (lambda c: c if len(c) == 2 else None)(
                harness.child_pids(server.httpd_pid)),
            what="2 prefork children")
        get_json(server.port, "/")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as executor:
            answers = list(executor.map(
                lambda _: get_json(server.port, "/sleep/%s" % SLEEP),
                range(4)))
        took = time.monotonic() - started
        pids = {a["pid"] for a in answers}
        assert pids <= set(children), (pids, children)
        # Two at a time: at least two rounds of SLEEP.
        assert took >= 2 * SLEEP - 0.1, took
        # Apache never went past the cap, even with requests waiting, and
        # said so (AH00161).
        assert len(harness.child_pids(server.httpd_pid)) <= 2
        server.wait_for_log(re.compile(r"reached MaxRequestWorkers setting"))


# --- --group -----------------------------------------------------------------

def _other_group(user):
    """A group that is not `user`'s primary one (nor root's)."""
    for name in ("nogroup", "nobody", "daemon", "users", "staff"):
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            continue
        if entry.gr_gid not in (0, user.pw_gid):
            return entry
    pytest.skip("no group other than %s's own to run Apache as"
                % user.pw_name)


def gids_of(pid):
    """Real, effective, saved and filesystem gids of pid, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Gid:"):
                    return [int(g) for g in line.split()[1:]]
    except FileNotFoundError:
        return None
    raise AssertionError("/proc/%d/status has no Gid line" % pid)


@needs_root
def test_express_group_runs_children_and_daemons_as_that_group():
    user = web_user()
    group = _other_group(user)
    with express_server(
            "group", _app, "--user", user.pw_name, "--group", group.gr_name,
            make_files=_app_files) as server:
        answer = get_json(server.port, "/")
        assert answer["uid"] == user.pw_uid
        assert (answer["gid"], answer["egid"]) == (group.gr_gid,
                                                   group.gr_gid)
        daemons = server.wait_daemons(1)
        assert answer["pid"] in daemons
        children = harness.wait_for(
            lambda: {c: g for c in harness.child_pids(server.httpd_pid)
                     for g in [gids_of(c)] if g is not None} or None,
            what="children of Apache pid %d" % server.httpd_pid)
        assert set(daemons) <= set(children)
        for child, gids in children.items():
            assert gids == [group.gr_gid] * 4, (child, gids)
        # Apache's parent stays root.
        assert gids_of(server.httpd_pid)[0] == 0
        assert server.summary()["Run As"].startswith(
            "%s:%s" % (user.pw_name, group.gr_name))


def test_express_group_as_non_root_is_ignored_with_a_note():
    if harness.running_as_root():
        pytest.skip("as root --group takes effect (tested above)")
    me = pwd.getpwuid(os.geteuid())
    with express_server(
            "group-user", _app, "--group", "nogroup",
            make_files=_app_files) as server:
        answer = get_json(server.port, "/")
        assert answer["gid"] == os.getgid()
        assert "--user and --group only take effect when started as root" \
            in server.stdout() + server.stderr()
        assert server.summary()["Run As"].startswith("%s:" % me.pw_name)
