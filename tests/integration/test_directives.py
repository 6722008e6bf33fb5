"""mod_wsgi's embedded-mode directives, against a real Apache.

Each class installs the config it needs; the apps live in
tests/apps/directives/.
"""

import grp
import os
import pwd
import re
import subprocess
import sys
import time

import pytest

import harness

D = "@APPS@/directives"


def _configtest(httpd_env, config):
    """Runs `httpd -t` on the harness's base config plus `config`."""
    srv = harness.ApacheServer(httpd_env.install, httpd_env.module,
                               config=config, name="configtest")
    try:
        srv.port = harness.free_port()
        srv.write_config()
        proc = srv._httpd("-t")
        return proc.returncode, " ".join((proc.stdout + proc.stderr).split())
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def server(httpd_env):
    with httpd_env.server("", name="directives") as srv:
        yield srv


def _restart(server, config):
    server.restart(config)
    return server


# --- application groups ------------------------------------------------------

GROUPS_CONFIG = f"""
WSGIScriptAlias /a {D}/groups.wsgi
WSGIScriptAlias /b {D}/groups.wsgi
WSGIScriptAlias /g1 {D}/groups.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /g2 {D}/groups.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /named1 {D}/groups.wsgi application-group=shared
WSGIScriptAlias /named2 {D}/groups.wsgi application-group=shared
WSGIScriptAlias /server {D}/groups.wsgi application-group=%{{SERVER}}
WSGIScriptAlias /host {D}/groups.wsgi application-group=%{{HOST}}
WSGIScriptAlias /env {D}/groups.wsgi application-group=%{{ENV:TETHER_GROUP}}
WSGIScriptAlias /dir {D}/groups.wsgi
<Location /env>
    SetEnv TETHER_GROUP from-env
</Location>
<Location /dir>
    WSGIApplicationGroup by-directive
</Location>
"""


class TestApplicationGroups:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, GROUPS_CONFIG)

    def _same_process(self, server, *paths):
        """Bodies of one request to each path, all served by one process."""
        for _ in range(20):
            bodies = [server.get(p).json() for p in paths]
            if len({b["pid"] for b in bodies}) == 1:
                return bodies
        pytest.fail("requests never landed in one process")

    def test_app_group_default_is_resource_per_mount_point(self, server):
        a, b = self._same_process(server, "/a", "/b")
        assert a["group"] == "127.0.0.1:%d|/a" % server.port
        assert b["group"] == "127.0.0.1:%d|/b" % server.port
        assert a["tether_group"] == a["group"]

    def test_app_group_separate_groups_have_separate_module_state(self, server):
        a, b, a2 = self._same_process(server, "/a", "/b", "/a")
        assert a["token"] != b["token"]
        assert a2["token"] == a["token"]
        assert a2["counter"] == a["counter"] + 1
        # Each runs in a sub-interpreter of its own, not the main one.
        if a["interpreter"] is not None:
            assert a["interpreter"] != b["interpreter"]
            assert a["interpreter"] != a["main_interpreter"]

    def test_app_group_global_is_main_interpreter_and_shared(self, server):
        g1, g2 = self._same_process(server, "/g1", "/g2")
        assert g1["group"] == "" and g2["group"] == ""
        assert g1["token"] == g2["token"]
        assert g2["counter"] == g1["counter"] + 1
        if g1["interpreter"] is not None:
            assert g1["interpreter"] == g1["main_interpreter"]

    def test_app_group_named_group_shared_between_mounts(self, server):
        n1, n2, a = self._same_process(server, "/named1", "/named2", "/a")
        assert n1["group"] == "shared"
        assert n1["token"] == n2["token"]
        assert n1["token"] != a["token"]

    def test_app_group_server_host_env_and_directive(self, server):
        host_port = "127.0.0.1:%d" % server.port
        assert server.get("/server").json()["group"] == host_port
        resp = server.get("/host", headers={"Host": "example.test:%d" % server.port})
        assert resp.json()["group"] == "example.test:%d" % server.port
        assert server.get("/env").json()["group"] == "from-env"
        assert server.get("/dir").json()["group"] == "by-directive"


class TestLazyInterpreters:
    """A sub-interpreter is created in a process on the first request for
    its application group there, not when the process starts."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        cls.mark = server.log_mark()
        server.restart(f"""
WSGIScriptAlias /lazy-a {D}/groups.wsgi application-group=lazy-a
WSGIScriptAlias /lazy-b {D}/groups.wsgi application-group=lazy-b
""", log_level="info")

    @staticmethod
    def _created(server, group, since):
        """The pids whose TETHER0203 line says they created `group`."""
        return [int(p) for p in re.findall(
            r"TETHER0203: Created Python interpreter for application group "
            r"'%s' in process (\d+)" % re.escape(group),
            server.error_log(since=since))]

    def test_app_group_interpreter_created_on_first_request(self, server):
        before_a = server.log_mark()
        pid_a = server.get("/lazy-a").json()["pid"]
        server.wait_for_log(r"TETHER0203: .*'lazy-a' in process %d$" % pid_a,
                            since=before_a)
        # Not when the process started: only for the request.
        assert self._created(server, "lazy-a", self.mark) \
            == self._created(server, "lazy-a", before_a)
        # The process is up and has served lazy-a: nothing of lazy-b yet.
        assert self._created(server, "lazy-b", self.mark) == []
        before_b = server.log_mark()
        pid_b = server.get("/lazy-b").json()["pid"]
        server.wait_for_log(r"TETHER0203: .*'lazy-b' in process %d$" % pid_b,
                            since=before_b)
        # Once per process: another request there creates nothing more.
        again = server.log_mark()
        if server.get("/lazy-b").json()["pid"] == pid_b:
            assert self._created(server, "lazy-b", again) == []


# --- callable, authorization, HEAD ------------------------------------------

OPTIONS_CONFIG = f"""
WSGIScriptAlias /default {D}/groups.wsgi
WSGIScriptAlias /other {D}/groups.wsgi callable-object=other
WSGIScriptAlias /bydirective {D}/groups.wsgi
WSGIScriptAlias /auth-option {D}/groups.wsgi pass-authorization=On
WSGIScriptAlias /auth-directive {D}/groups.wsgi
WSGIScriptAlias /head-on {D}/groups.wsgi
WSGIScriptAlias /head-off {D}/groups.wsgi
WSGIScriptAliasMatch ^/match/([a-z]+) {D}/$1.wsgi
<Location /bydirective>
    WSGICallableObject other
</Location>
<Location /auth-directive>
    WSGIPassAuthorization On
</Location>
<Location /head-on>
    WSGIMapHEADToGET On
</Location>
<Location /head-off>
    WSGIMapHEADToGET Off
</Location>
"""


class TestScriptAliasOptions:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, OPTIONS_CONFIG)

    def test_callable_object_option_and_directive(self, server):
        assert server.get("/default").json()["callable"] == "application"
        assert server.get("/other").body == b"other callable"
        assert server.get("/bydirective").body == b"other callable"

    def test_pass_authorization_off_by_default(self, server):
        resp = server.get("/default", headers={"Authorization": "Basic dTpw"})
        assert resp.json()["authorization"] is None

    def test_pass_authorization_option_and_directive(self, server):
        for path in ("/auth-option", "/auth-directive"):
            resp = server.get(path, headers={"Authorization": "Basic dTpw"})
            assert resp.json()["authorization"] == "Basic dTpw", path

    def test_map_head_to_get(self, server):
        resp = server.request("HEAD", "/head-on")
        assert resp.status == 200 and resp.body == b""
        assert resp.header("X-Method") == "GET"
        resp = server.request("HEAD", "/head-off")
        assert resp.status == 200 and resp.body == b""
        assert resp.header("X-Method") == "HEAD"
        # Auto (the default) maps only when an output filter needs the body;
        # with none here the application sees HEAD.
        resp = server.request("HEAD", "/default")
        assert resp.header("X-Method") == "HEAD"

    def test_script_alias_match_substitutes_groups(self, server):
        resp = server.get("/match/groups/extra/path")
        assert resp.status == 200
        body = resp.json()
        assert body["path_info"] == "/extra/path"
        assert body["script_name"] == "/match/groups"

    def test_script_alias_match_missing_script_is_404(self, server):
        mark = server.log_mark()
        assert server.get("/match/nosuchscript").status == 404
        server.wait_for_log(r"TETHER0102: WSGI script not found", since=mark)


class TestMapHeadToGetAuto:
    """WSGIMapHEADToGET Auto (the default) maps HEAD to GET when an output
    filter that may need the body (a content filter, such as SUBSTITUTE)
    runs on the response, and only then."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server, httpd_env):
        if not httpd_env.install.has_module("substitute"):
            pytest.skip("Apache has no mod_substitute for a content filter")
        _restart(server, f"""
{httpd_env.install.module_line("substitute")}
WSGIScriptAlias /auto-filtered {D}/groups.wsgi
WSGIScriptAlias /auto-plain {D}/groups.wsgi
WSGIScriptAlias /off-filtered {D}/groups.wsgi
<Location /auto-filtered>
    SetOutputFilter SUBSTITUTE
    Substitute "s/tether-no-such-text/x/"
</Location>
<Location /off-filtered>
    WSGIMapHEADToGET Off
    SetOutputFilter SUBSTITUTE
    Substitute "s/tether-no-such-text/x/"
</Location>
""")

    def test_map_head_to_get_auto_maps_with_a_content_filter(self, server):
        resp = server.request("HEAD", "/auto-filtered")
        assert resp.status == 200 and resp.body == b""
        assert resp.header("X-Method") == "GET"
        # GET through the filter still works, and sees GET.
        assert server.get("/auto-filtered").json()["method"] == "GET"

    def test_map_head_to_get_auto_without_filter_and_off_keep_head(
            self, server):
        assert server.request("HEAD", "/auto-plain").header("X-Method") \
            == "HEAD"
        assert server.request("HEAD", "/off-filtered").header("X-Method") \
            == "HEAD"


# --- Python settings -----------------------------------------------------------

def _expected_hash(seed):
    out = subprocess.run([sys.executable, "-c", "print(hash('abc'))"],
                         env={"PYTHONHASHSEED": str(seed)},
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


class TestPythonSettings:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        pp = os.path.join(server.scratch, "pp")
        extra = os.path.join(server.scratch, "pp-extra")
        for d in (pp, extra):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        with open(os.path.join(pp, "tether_pp_direct.py"), "w") as f:
            f.write("NAME = 'direct'\n")
        with open(os.path.join(extra, "tether_pp_via_pth.py"), "w") as f:
            f.write("NAME = 'via-pth'\n")
        with open(os.path.join(pp, "extra.pth"), "w") as f:
            f.write(extra + "\n")
        for d in (pp, extra):
            for name in os.listdir(d):
                os.chmod(os.path.join(d, name), 0o644)
        _restart(server, f"""
WSGIPythonPath {pp}
WSGIPythonOptimize 1
WSGIPythonHashSeed 123
WSGIDontWriteBytecode On
WSGIScriptAlias /pp {D}/pathmod.wsgi
WSGIScriptAlias /info {D}/groups.wsgi
""")

    def test_python_path_adds_site_dir_with_pth_files(self, server):
        resp = server.get("/pp")
        assert resp.status == 200, resp
        assert resp.json() == ["direct", "via-pth"]

    def test_python_optimize_hash_seed_and_bytecode(self, server):
        info = server.get("/info").json()
        assert info["optimize"] == 1
        assert info["dont_write_bytecode"] is True
        assert info["hash_randomization"] == 1
        assert info["hash_abc"] == _expected_hash(123)

    def test_python_home_is_the_venv(self, server):
        info = server.get("/info").json()
        assert os.path.realpath(info["prefix"]) == os.path.realpath(sys.prefix)
        assert info["argv"] == ["mod_wsgi"]


class TestPythonProcessSettings:
    """WSGIPythonWarnings (every process), WSGIPythonEggs and
    WSGISwitchInterval (embedded mode; a daemon group has python-eggs= and
    switch-interval= instead)."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server, tether_only):
        cls.eggs = os.path.join(server.scratch, "eggs")
        cls.daemon_eggs = os.path.join(server.scratch, "daemon-eggs")
        cls.mark = server.log_mark()
        _restart(server, f"""
WSGIPythonWarnings ignore::UserWarning
WSGIPythonWarnings error::DeprecationWarning
WSGIPythonEggs {cls.eggs}
WSGISwitchInterval 0.002
WSGIDaemonProcess tuned processes=1 threads=2 switch-interval=0.25 python-eggs={cls.daemon_eggs}
WSGIDaemonProcess plain processes=1 threads=2
WSGIScriptAlias /sub {D}/groups.wsgi
WSGIScriptAlias /main {D}/groups.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /tuned {D}/groups.wsgi process-group=tuned
WSGIScriptAlias /plain {D}/groups.wsgi process-group=plain
""")

    @pytest.mark.parametrize("path", ["/sub", "/main", "/tuned", "/plain"])
    def test_python_warnings_filters_reach_every_interpreter(self, server,
                                                             path):
        info = server.get(path).json()
        assert info["warnoptions"] == ["ignore::UserWarning",
                                       "error::DeprecationWarning"]
        assert info["deprecation_is_error"] is True

    @pytest.mark.parametrize("path", ["/sub", "/main"])
    def test_embedded_mode_has_eggs_and_switch_interval(self, server, path):
        info = server.get(path).json()
        assert info["process_group"] == ""
        assert info["egg_cache"] == self.eggs
        assert info["switch_interval"] == pytest.approx(0.002)

    def test_daemon_group_has_its_own_eggs_and_switch_interval(self, server):
        info = server.get("/tuned").json()
        assert info["process_group"] == "tuned"
        assert info["egg_cache"] == self.daemon_eggs
        assert info["switch_interval"] == pytest.approx(0.25)
        server.wait_for_log(r"TETHER0208: Python's switch interval in process "
                            r"%d is 0.25 seconds" % info["pid"],
                            since=self.mark)

    def test_daemon_group_without_options_keeps_pythons_defaults(self,
                                                                 server):
        info = server.get("/plain").json()
        assert info["process_group"] == "plain"
        assert info["egg_cache"] is None
        assert info["switch_interval"] == pytest.approx(0.005)


@pytest.mark.parametrize("destroy", [None, "On", "Off"])
def test_destroy_interpreter_decides_whether_atexit_runs(httpd_env,
                                                         tether_only,
                                                         destroy):
    line = "WSGIDestroyInterpreter %s\n" % destroy if destroy else ""
    for mode in harness.WSGI_MODES:
        with httpd_env.server(line + f"WSGIScriptAlias /x {D}/exit_probe.wsgi\n",
                              wsgi_mode=mode, daemon_processes=1,
                              name="destroy-%s-%s" % (destroy, mode)) as srv:
            resp = srv.get("/x")
            assert resp.status == 200, srv.error_log()
            pid = int(resp.body)
            harness.let_children_settle()
            srv.stop()
            shutdown = os.path.join(srv.scratch, "shutdown-%d" % pid)
            atexit_file = os.path.join(srv.scratch, "atexit-%d" % pid)
            end = time.monotonic() + harness.WAIT_DEADLINE
            while not os.path.exists(shutdown) and time.monotonic() < end:
                time.sleep(0.05)
            # Shutdown subscribers run either way; atexit functions only
            # when the interpreter is "destroyed" (the default).  Both are
            # written before the process exits, which stop() waited for.
            assert os.path.exists(shutdown), (mode, os.listdir(srv.scratch))
            assert os.path.exists(atexit_file) == (destroy != "Off"), \
                (mode, os.listdir(srv.scratch))


# Set in httpd's environment: a Python started with PyConfig's isolated
# configuration ignores every one of them (PYTHONHOME would even stop a
# non-isolated start: it names no Python).
PYTHON_ENVIRONMENT = {
    "PYTHONOPTIMIZE": "2",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHOME": "/nonexistent-tether-python-home",
}


@pytest.mark.parametrize("wsgi_mode", harness.WSGI_MODES)
def test_python_start_ignores_python_environment_variables(
        httpd_env, tether_only, wsgi_mode):
    srv = httpd_env.server(f"WSGIScriptAlias /info {D}/groups.wsgi\n",
                           name="isolated-" + wsgi_mode, wsgi_mode=wsgi_mode,
                           daemon_processes=1)
    leak = os.path.join(srv.scratch, "pythonpath-leak")
    os.mkdir(leak, 0o755)
    srv.extra_env = dict(PYTHON_ENVIRONMENT, PYTHONPATH=leak)
    with srv:
        resp = srv.get("/info")
        assert resp.status == 200, srv.error_log()
        info = resp.json()
    # The variables did reach the process that runs the application...
    assert info["env_pythonpath"] == leak
    # ...and Python's configuration ignored them.
    assert leak not in info["sys_path"]
    assert info["optimize"] == 0
    assert info["dont_write_bytecode"] is False
    assert info["hash_randomization"] == 1
    assert os.path.realpath(info["prefix"]) == os.path.realpath(sys.prefix)


# --- reloading, preloading ---------------------------------------------------

class TestScriptReloading:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        # The scripts must exist when the config is checked.
        for name in ("reload.wsgi", "noreload.wsgi"):
            cls._rewrite(os.path.join(server.scratch, name), "zero")
        _restart(server, f"""
<Directory @SCRATCH@>
    Require all granted
</Directory>
WSGIScriptAlias /reload2 @SCRATCH@/reload.wsgi
WSGIScriptAlias /noreload @SCRATCH@/noreload.wsgi
<Location /noreload>
    WSGIScriptReloading Off
</Location>
""")

    @staticmethod
    def _rewrite(path, version):
        st = os.stat(path) if os.path.exists(path) else None
        with open(path, "w") as f:
            f.write("import os\nVERSION = %r\n\n\n"
                    "def application(environ, start_response):\n"
                    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                    "    return [('%%s %%d' %% (VERSION, os.getpid())).encode()]\n"
                    % version)
        os.chmod(path, 0o644)
        if st:  # a new mtime even on a coarse clock
            os.utime(path, (st.st_atime, st.st_mtime + 2))

    def _get(self, server, path):
        version, pid = server.get(path).body.decode().split()
        return version, int(pid)

    def test_script_reloading_on_reloads_changed_file(self, server):
        path = os.path.join(server.scratch, "reload.wsgi")
        self._rewrite(path, "one")
        seen = {self._get(server, "/reload2") for _ in range(5)}
        assert {v for v, _ in seen} == {"one"}
        self._rewrite(path, "two")
        for _ in range(5):
            assert self._get(server, "/reload2")[0] == "two"

    def test_script_reloading_off_keeps_loaded_module(self, server):
        path = os.path.join(server.scratch, "noreload.wsgi")
        self._rewrite(path, "first")
        loaded = {self._get(server, "/noreload")[1] for _ in range(8)}
        self._rewrite(path, "second")
        kept = 0
        for _ in range(8):
            version, pid = self._get(server, "/noreload")
            if pid in loaded:
                assert version == "first"
                kept += 1
        assert kept > 0


class TestImportScript:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        cls.mark = server.log_mark()
        _restart(server, f"""
WSGIImportScript {D}/preload.wsgi process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
WSGIScriptAlias /preloaded {D}/preload.wsgi application-group=%{{GLOBAL}}
""")

    def test_import_script_runs_at_process_start(self, server):
        # Executed in each child as it starts, before any request arrives.
        server.wait_for_log(r"preload\.wsgi executed in pid \d+",
                            since=self.mark)
        log = server.error_log(since=self.mark)
        first_request = log.find("[client ")
        first_preload = log.find("preload.wsgi executed")
        assert first_preload != -1
        assert first_request == -1 or first_preload < first_request

    def test_python_starts_in_the_children_not_in_the_parent(self, server):
        # WSGIImportScript runs right after Python starts in a process: the
        # processes that ran it are Apache's children, never the parent.
        server.wait_for_log(r"preload\.wsgi executed in pid \d+",
                            since=self.mark)
        server.get("/preloaded")
        pids = {int(p) for p in re.findall(
            r"preload\.wsgi executed in pid (\d+)",
            server.error_log(since=self.mark))}
        children = set(server.children())
        assert pids and server.pid not in pids, (pids, server.pid)
        assert pids <= children, (pids, children)

    def test_import_script_module_is_the_one_requests_use(self, server):
        resp = server.get("/preloaded")
        pid, loaded_at = resp.body.split(b" ", 1)
        # Loaded once per process: the same value again.
        again = server.get("/preloaded")
        if again.body.split(b" ", 1)[0] == pid:
            assert again.body.split(b" ", 1)[1] == loaded_at
        log = server.error_log()
        assert log.count("executed in pid %s" % pid.decode()) == 1


# --- restrictions ------------------------------------------------------------

class TestRestrictionsDefault:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, f"WSGIScriptAlias /r {D}/restrict.wsgi\n")

    def test_restrict_stdin_on_by_default(self, server):
        body = server.get("/r/stdin").json()
        assert body["ok"] is False
        assert "OSError" in body["error"] and "WSGIRestrictStdin" in body["error"]

    def test_restrict_stdout_off_by_default_prints_to_error_log(self, server):
        mark = server.log_mark()
        assert server.get("/r/stdout").json()["ok"] is True
        line = server.wait_for_log(r".*hello from print to stdout.*",
                                   since=mark).group(0)
        assert "[client 127.0.0.1:" in line

    def test_restrict_signal_on_by_default_ignores_and_warns(self, server):
        mark = server.log_mark()
        body = server.get("/r/signal").json()
        assert body["ok"] is True
        # The handler was not installed.
        assert body["handler_now"] == body["value"]
        server.wait_for_log(r"TETHER0210: Callback registration for signal "
                            r"\d+ ignored", since=mark)


class TestRestrictionsChanged:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, f"""
WSGIRestrictStdin Off
WSGIRestrictStdout On
WSGIRestrictSignal Off
WSGIScriptAlias /r {D}/restrict.wsgi
""")

    def test_restrict_stdin_off_allows_reading(self, server):
        body = server.get("/r/stdin").json()
        assert body["ok"] is True

    def test_restrict_stdout_on_raises(self, server):
        body = server.get("/r/stdout").json()
        assert body["ok"] is False
        assert "WSGIRestrictStdout" in body["error"]

    def test_restrict_signal_off_calls_real_signal(self, server):
        # Not intercepted: Python's own signal.signal() runs, and refuses
        # because requests are not served by the main thread.
        body = server.get("/r/signal").json()
        assert body["ok"] is False
        assert "ValueError" in body["error"]
        assert "main thread" in body["error"]


class TestRestrictEmbedded:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, f"""
WSGIRestrictEmbedded On
WSGIScriptAlias /app {D}/groups.wsgi
""")

    def test_restrict_embedded_refuses_with_500_and_log(self, server):
        mark = server.log_mark()
        assert server.get("/app").status == 500
        server.wait_for_log(r"TETHER0106: Embedded mode is disabled by "
                            r"WSGIRestrictEmbedded On", since=mark)


# --- handlers, missing scripts, start-up failure -----------------------------

class TestHandlerMapping:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        _restart(server, f"""
WSGIScriptAlias /scripts/ {D}/
Alias /viahandler {D}
Alias /noexec {D}
<Location /viahandler>
    Options +ExecCGI
    SetHandler wsgi-script
</Location>
<Location /noexec>
    Options -ExecCGI
    SetHandler wsgi-script
</Location>
""")

    def test_script_alias_to_directory_picks_script_and_path_info(self, server):
        body = server.get("/scripts/groups.wsgi/more").json()
        assert body["script_name"] == "/scripts/groups.wsgi"
        assert body["path_info"] == "/more"

    def test_script_alias_to_directory_missing_script_is_404(self, server):
        assert server.get("/scripts/absent.wsgi").status == 404

    def test_set_handler_with_execcgi_runs_script(self, server):
        body = server.get("/viahandler/groups.wsgi").json()
        assert body["script_name"] == "/viahandler/groups.wsgi"

    def test_set_handler_without_execcgi_is_forbidden(self, server):
        mark = server.log_mark()
        assert server.get("/noexec/groups.wsgi").status == 403
        server.wait_for_log(r"TETHER0104: Options ExecCGI is off", since=mark)


class TestPythonStartupFailure:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def config(cls, server):
        cls.mark = server.log_mark()
        fake = os.path.join(server.scratch, "fake-prefix")
        os.makedirs(os.path.join(fake, "lib", "python%d.%d" % sys.version_info[:2]),
                    exist_ok=True)
        for dirpath, _, _ in os.walk(fake):
            os.chmod(dirpath, 0o755)
        _restart(server, f"""
WSGIPythonHome {fake}
WSGIScriptAlias /app {D}/groups.wsgi
""")
        yield
        _restart(server, "")

    def test_python_startup_failure_gives_500_and_apache_lives(self, server):
        mark = server.log_mark()
        assert server.get("/app").status == 500
        assert server.get("/app").status == 500
        server.wait_for_log(r"TETHER0201: Python could not start in process "
                            r"\d+: .*check WSGIPythonHome")
        server.wait_for_log(r"TETHER0204: Python is not available", since=mark)
        assert harness.pid_alive(server.pid)

    def test_python_startup_is_tried_in_the_children_only(self, server):
        # TETHER0201 names the process that tried to start Python: only
        # Apache's children do; the parent (root, when started as root)
        # never runs Python.
        assert server.get("/app").status == 500
        server.wait_for_log(r"TETHER0201: ", since=self.mark)
        pids = {int(p) for p in re.findall(
            r"TETHER0201: Python could not start in process (\d+)",
            server.error_log(since=self.mark))}
        children = set(server.children())
        assert pids and server.pid not in pids, (pids, server.pid)
        assert pids <= children, (pids, children)


# --- configuration errors (apachectl -t) -------------------------------------

BAD_CONFIGS = [
    ("WSGIScriptAlias /app @APPS@/no-such-script.wsgi",
     "the WSGI script '@APPS@/no-such-script.wsgi' does not exist"),
    (f"WSGIScriptAlias /app {D}/groups.wsgi colour=blue",
     "WSGIScriptAlias: unknown option 'colour'"),
    (f"WSGIScriptAlias /app {D}/groups.wsgi pass-authorization=maybe",
     "'maybe' is not On or Off"),
    (f"WSGIScriptAlias /app {D}/groups.wsgi application-group=%{{BOGUS}}",
     "unknown expansion '%{BOGUS}'"),
    (f"WSGIScriptAlias /app {D}/groups.wsgi callable-object=not-an-identifier",
     "'not-an-identifier' is not a Python identifier"),
    (f"WSGIScriptAlias /app {D}/groups.wsgi process-group=nosuchgroup",
     "process-group 'nosuchgroup' names no WSGIDaemonProcess group; define "
     "the group with WSGIDaemonProcess"),
    (f"WSGIScriptAliasMatch ^/(unclosed {D}/$1.wsgi",
     "'^/(unclosed' is not a valid regular expression"),
    (f"WSGIScriptAlias app {D}/groups.wsgi",
     "URL path 'app' must start with '/'"),
    ("WSGIApplicationGroup %{NOPE}", "unknown expansion '%{NOPE}'"),
    ("WSGIProcessGroup %{RESOURCE}", "unknown expansion '%{RESOURCE}'"),
    ("WSGIPythonOptimize 3", "WSGIPythonOptimize: '3' is not 0, 1 or 2"),
    ("WSGIPythonHashSeed lots",
     "WSGIPythonHashSeed: 'lots' is not 'random' or a number"),
    ("WSGIPythonWarnings shout::DeprecationWarning",
     "WSGIPythonWarnings: 'shout::DeprecationWarning' does not start with a "
     "warnings action"),
    ("WSGIPythonWarnings error:::mod:1:2",
     "WSGIPythonWarnings: 'error:::mod:1:2' has 6 fields"),
    ("WSGIPythonWarnings error:::mod:ten",
     "line number 'ten' is not a whole number"),
    ("WSGISwitchInterval soon",
     "WSGISwitchInterval: 'soon' must be a number of seconds above 0"),
    ("WSGISwitchInterval 0",
     "WSGISwitchInterval: '0' must be a number of seconds above 0"),
    ("WSGIPythonEggs relative/eggs",
     "WSGIPythonEggs: 'relative/eggs' must be the absolute path"),
    ("<Location /health>\nWSGIIgnoreActivity sometimes\n</Location>",
     "WSGIIgnoreActivity: 'sometimes' is not On or Off"),
    ("WSGIDestroyInterpreter maybe",
     "WSGIDestroyInterpreter: 'maybe' is not On or Off"),
    ("<VirtualHost *:80>\nWSGISwitchInterval 0.01\n</VirtualHost>",
     "WSGISwitchInterval cannot occur within <VirtualHost> section"),
    ("WSGIDaemonProcess site switch-interval=-1",
     "WSGIDaemonProcess site: switch-interval '-1' must be a number of "
     "seconds above 0"),
    ("WSGIPythonHome /nonexistent-tether-home",
     "WSGIPythonHome: '/nonexistent-tether-home' is not a directory"),
    ("WSGIPythonHome /tmp",
     "WSGIPythonHome: '/tmp' is neither a virtual environment"),
    ("WSGIMapHEADToGET sometimes", "'sometimes' is not On, Off or Auto"),
    ("WSGIRestrictStdin perhaps", "WSGIRestrictStdin: 'perhaps' is not On or Off"),
    ("WSGIImportScript @APPS@/missing.wsgi",
     "WSGIImportScript: the script '@APPS@/missing.wsgi' does not exist"),
    (f"WSGIImportScript {D}/preload.wsgi flavour=x",
     "WSGIImportScript: unknown option 'flavour'"),
    ("<VirtualHost *:80>\nWSGIPythonHome /usr\n</VirtualHost>",
     "cannot occur within <VirtualHost> section"),
    ("WSGIAcceptMutex default",
     "WSGIAcceptMutex is a mod_wsgi directive that Tether does not support"),
    # daemon mode: WSGIDaemonProcess and the directives that go with it
    ("WSGIDaemonProcess site processes=two",
     "WSGIDaemonProcess site: processes 'two' must be a whole number from 1 "
     "to 10000"),
    ("WSGIDaemonProcess site threads=-1",
     "WSGIDaemonProcess site: threads '-1' must be a whole number from 0 to"),
    ("WSGIDaemonProcess site socket-timeout=1.5",
     "socket-timeout '1.5' must be a whole number of seconds from 0 to"),
    ("WSGIDaemonProcess site colour=blue",
     "WSGIDaemonProcess site: unknown option 'colour'"),
    ("WSGIDaemonProcess site lonely",
     "WSGIDaemonProcess site: 'lonely' is not an option of the form name=value"),
    ("WSGIDaemonProcess site threads=2 threads=3",
     "WSGIDaemonProcess site: option 'threads' given twice"),
    ("WSGIDaemonProcess processes=2",
     "WSGIDaemonProcess: the first argument must be the name of the group"),
    ("WSGIDaemonProcess site\n<VirtualHost *:80>\nServerName other.test\n"
     "WSGIDaemonProcess site threads=1\n</VirtualHost>",
     "WSGIDaemonProcess: group 'site' is already defined at "
     "@ROOT@/conf/httpd.conf:"),
    ("WSGIDaemonProcess site user=tether-no-such-user",
     "WSGIDaemonProcess site: user 'tether-no-such-user' names no user of "
     "this system"),
    ("WSGIDaemonProcess site user=root",
     "WSGIDaemonProcess site: user 'root' is uid 0: daemon processes never "
     "run as root"),
    ("WSGIDaemonProcess site user=#0", "user '#0' is uid 0"),
    ("WSGIDaemonProcess site group=tether-no-such-group",
     "group 'tether-no-such-group' names no group of this system"),
    ("WSGIDaemonProcess site supplementary-groups=#0,tether-no-such-group",
     "supplementary-groups 'tether-no-such-group' names no group"),
    ("WSGIDaemonProcess site umask=0999",
     "WSGIDaemonProcess site: umask '0999' must be an octal number from "
     "0000 to 0777"),
    ("WSGIDaemonProcess site send-buffer-size=100",
     "send-buffer-size '100' must be 0 (the system's default) or a whole "
     "number of bytes from 512"),
    ("WSGIDaemonProcess site header-buffer-size=1024",
     "header-buffer-size '1024' must be 0 (the default, 32768) or a whole "
     "number of bytes from 8192"),
    ("WSGIDaemonProcess site memory-limit=512",
     "memory-limit '512' must be 0 (no limit) or a whole number of bytes "
     "from 1048576"),
    ("WSGIDaemonProcess site cpu-priority=21",
     "cpu-priority '21' must be a whole number from -20 to 20"),
    ("WSGIDaemonProcess site display-name='(wsgi: site)",
     "the value of option 'display-name' has no closing '"),
    ("WSGIDaemonProcess site home=relative/dir",
     "home 'relative/dir' must be the absolute path of a directory"),
    ("WSGIDaemonProcess site python-home=/nonexistent-tether-home",
     "WSGIDaemonProcess site: python-home '/nonexistent-tether-home' is not "
     "a directory"),
    ("WSGIDaemonProcess site script-user=#0 script-group=#0",
     "WSGIDaemonProcess site: give script-user or script-group, not both"),
    ("WSGIDaemonProcess site server-metrics=sometimes",
     "server-metrics 'sometimes' is not On or Off"),
    ("WSGIDaemonProcess site chroot=/srv/jail",
     "option 'chroot' is not supported by Tether"),
    ("WSGIDaemonProcess site interrupt-timeout=10",
     "interrupt-timeout '10' is not supported by Tether yet"),
    ("<Location /x>\nWSGIDaemonProcess site\n</Location>",
     "WSGIDaemonProcess not allowed in <Location> context"),
    ("<VirtualHost *:80>\nWSGISocketPrefix run/wsgi\n</VirtualHost>",
     "WSGISocketPrefix cannot occur within <VirtualHost> section"),
    ("WSGISocketPrefix /tmp/" + "x" * 80 + "/wsgi\nWSGIDaemonProcess site",
     "TETHER0004: the daemon sockets' path prefix '/tmp/xxx"),
    ("WSGISocketRotation sometimes",
     "WSGISocketRotation: 'sometimes' is not On or Off"),
    ("WSGIRestrictProcess",
     "WSGIRestrictProcess needs the names of one or more WSGIDaemonProcess "
     "groups"),
    ("<VirtualHost *:80>\nServerName one.test\nWSGIDaemonProcess site\n"
     "</VirtualHost>\n<VirtualHost *:80>\nServerName two.test\n"
     f"WSGIScriptAlias /app {D}/groups.wsgi process-group=site\n"
     "</VirtualHost>",
     "process-group 'site' names the WSGIDaemonProcess group of another "
     "virtual host (@ROOT@/conf/httpd.conf:"),
    ("<Location /x>\nWSGIProcessGroup nosuchgroup\n</Location>",
     "WSGIProcessGroup 'nosuchgroup' names no WSGIDaemonProcess group"),
    (f"WSGIImportScript {D}/preload.wsgi process-group=nosuchgroup "
     "application-group=%{GLOBAL}",
     "WSGIImportScript @APPS@/directives/preload.wsgi: process-group "
     "'nosuchgroup' names no WSGIDaemonProcess group"),
]


@pytest.mark.parametrize("config,message", BAD_CONFIGS,
                         ids=[c[0].split()[0].strip("<") + "-%d" % i
                              for i, c in enumerate(BAD_CONFIGS)])
def test_config_error_names_value_and_line(httpd_env, tether_only, config, message):
    srv = harness.ApacheServer(httpd_env.install, httpd_env.module,
                               config=config, name="configtest")
    try:
        srv.port = harness.free_port()
        srv.write_config()
        proc = srv._httpd("-t")
        out = " ".join((proc.stdout + proc.stderr).split())
        assert proc.returncode != 0, out
        assert srv.expand(message) in out
        # Every error names the line: httpd's "line N of httpd.conf" for a
        # directive's own error; "httpd.conf:N" in the message of an error
        # found once the whole config is read (check_config).
        assert re.search(r"line \d+ of %s|%s:\d+"
                         % ((re.escape(srv.conf_path),) * 2), out), out
    finally:
        srv.cleanup()


def test_config_good_values_pass_configtest(httpd_env):
    code, out = _configtest(httpd_env, f"""
WSGIScriptAlias /a {D}/groups.wsgi process-group=%{{GLOBAL}} application-group=%{{GLOBAL}} callable-object=application pass-authorization=Off
WSGIScriptAliasMatch ^/m/([a-z]+) {D}/$1.wsgi
WSGIApplicationGroup %{{ENV:X}}
WSGIProcessGroup %{{GLOBAL}}
WSGIPythonOptimize 2
WSGIPythonHashSeed random
WSGIPythonWarnings ignore
WSGIPythonWarnings "d:a message:UserWarning:some.module:12"
WSGIPythonWarnings :::
WSGIPythonEggs /var/cache/eggs
WSGISwitchInterval 1e-3
WSGIDestroyInterpreter Off
<Location /health>
    WSGIIgnoreActivity On
</Location>
WSGIMapHEADToGET Auto
WSGIChunkedRequest On
WSGIRestrictEmbedded Off
""")
    assert code == 0, out
    assert "Syntax OK" in out


def _daemon_identity():
    """A user and its group that exist and are not root, for user=/group=."""
    candidates = [pwd.getpwuid(os.getuid())] + pwd.getpwall()
    for pw in candidates:
        if pw.pw_uid == 0:
            continue
        try:
            return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name
        except KeyError:
            continue
    pytest.skip("no user other than root with a named group on this system")


def test_config_daemon_process_every_option_passes_configtest(httpd_env):
    user, group = _daemon_identity()
    code, out = _configtest(httpd_env, f"""
WSGISocketPrefix run/wsgi
WSGISocketRotation Off
WSGIDaemonProcess site processes=2 threads=5 user={user} group={group} \\
    supplementary-groups={group} umask=0027 home=@SCRATCH@ \\
    display-name=%{{GROUP}} lang=en_US.UTF-8 locale=en_US.UTF-8 \\
    python-home={sys.prefix} python-path=@APPS@:@SCRATCH@ \\
    python-eggs=@SCRATCH@/eggs maximum-requests=1000 restart-interval=3600 \\
    cpu-time-limit=600 inactivity-timeout=300 request-timeout=60 \\
    deadlock-timeout=60 startup-timeout=15 graceful-timeout=15 \\
    eviction-timeout=0 shutdown-timeout=5 connect-timeout=15 \\
    socket-timeout=60 queue-timeout=45 listen-backlog=500 \\
    send-buffer-size=0 receive-buffer-size=1048576 header-buffer-size=65536 \\
    response-buffer-size=0 response-socket-timeout=0 socket-user={user} \\
    script-user={user} cpu-priority=-5 memory-limit=1073741824 \\
    virtual-memory-limit=0 stack-size=524288 server-metrics=Off \
    switch-interval=0.01
WSGIDaemonProcess quoted display-name='(wsgi: quoted site)' python-path="@APPS@"
WSGIDaemonProcess user-by-id user=#{pwd.getpwnam(user).pw_uid} threads=0
WSGIScriptAlias /a {D}/groups.wsgi process-group=site application-group=%{{GLOBAL}}
WSGIImportScript {D}/preload.wsgi process-group=quoted application-group=%{{GLOBAL}}
<VirtualHost *:80>
    ServerName vhost.test
    WSGIDaemonProcess vhost-site threads=1
    WSGIScriptAlias /v {D}/groups.wsgi process-group=vhost-site
</VirtualHost>
<VirtualHost *:81>
    ServerName vhost.test
    WSGIProcessGroup vhost-site
</VirtualHost>
<Location /a>
    WSGIProcessGroup site
    WSGIRestrictProcess site quoted
</Location>
""")
    assert code == 0, out
    assert "Syntax OK" in out


MOD_WSGI_CANDIDATES = [
    "/usr/lib/apache2/modules/mod_wsgi.so",
    "/usr/lib64/httpd/modules/mod_wsgi.so",
    "/usr/lib/httpd/modules/mod_wsgi.so",
]


def test_config_mod_wsgi_and_tether_together_refused(httpd_env, tether_only):
    mod_wsgi = next((p for p in MOD_WSGI_CANDIDATES if os.path.exists(p)), None)
    if not mod_wsgi:
        pytest.skip("no mod_wsgi.so to load beside mod_tether "
                    "(Debian: apt-get install libapache2-mod-wsgi-py3)")
    # mod_wsgi first: its directives then win, but the check still runs.
    code, out = _configtest(httpd_env, f"LoadModule wsgi_module {mod_wsgi}\n")
    assert code != 0, out
    assert "TETHER0001: mod_tether and mod_wsgi are both loaded" in out
    assert "a2dismod wsgi" in out
