"""Rendering of tether-express's templates into httpd.conf and friends, and
of the example configurations in apache-conf/.  No Apache is started."""

import os
import pathlib
import re
import stat
import sys

import pytest

from tether import cli, express
from tether.access import Account
from tether.apache import Apache, ApacheError
from tether.render import (Blocks, TemplateError, apache_escape,
                           placeholders, render_file, render_text)

REPO = pathlib.Path(__file__).resolve().parents[2]
APACHE_CONF = REPO / "apache-conf"
MODULES = ("mod_mpm_event.so", "mod_mpm_worker.so", "mod_mpm_prefork.so",
           "mod_authz_core.so", "mod_mime.so", "mod_alias.so", "mod_env.so",
           "mod_rewrite.so", "mod_log_config.so", "mod_unixd.so")
# As Debian's apache2 -l lists them.
DEBIAN_BUILTINS = ("core.c", "mod_so.c", "mod_watchdog.c", "http_core.c",
                   "mod_log_config.c", "mod_logio.c", "mod_version.c",
                   "mod_unixd.c")


@pytest.fixture
def layout(tmp_path):
    """A fake Apache (modules directory with every MPM), a module, an app."""
    modules = tmp_path / "modules"
    modules.mkdir()
    for name in MODULES:
        (modules / name).write_bytes(b"")
    app = tmp_path / "app"
    app.mkdir()
    script = app / "hello.wsgi"
    script.write_text("def application(environ, start_response):\n"
                      "    start_response('200 OK', [])\n"
                      "    return [b'hi']\n")
    module = tmp_path / "venv" / "tether" / "mod_tether.so"
    module.parent.mkdir(parents=True)
    module.write_bytes(b"")
    return {"root": tmp_path, "modules": modules, "app": app,
            "script": script, "module": module,
            "server_root": tmp_path / "server"}


def fake_apache(layout, builtins=DEBIAN_BUILTINS):
    return Apache("/usr/sbin/apache2", str(layout["modules"]), builtins,
                  "/etc/mime.types")


ACCOUNT = Account("www-data", 33, "www-data", 33)


def setup_for(layout, *options, apache=None, monkeypatch=None):
    """Parse start-server options (server root and working directory in
    tmp_path) and build the server root without writing it."""
    argv = ["start-server", "--server-root", str(layout["server_root"]),
            "--working-directory", str(layout["app"])] + list(options)
    args = cli.make_parser().parse_args(argv)
    return express.build(args, apache or fake_apache(layout), ACCOUNT,
                         str(layout["module"]),
                         command_line="tether-express test")


def conf_of(setup):
    text, mode = setup.files[setup.conf]
    assert mode == 0o644
    return text


def directives(text, name):
    """The argument strings of every `name` directive in a config text."""
    return [line.split(None, 1)[1] if " " in line.strip() else ""
            for line in (raw.strip() for raw in text.splitlines())
            if line.split(None, 1)[:1] == [name]]


# --- the template engine -----------------------------------------------------

def test_render_text_replaces_every_placeholder():
    assert render_text("a @X@ b @Y_2@ @X@", {"X": 1, "Y_2": "two"}) == \
        "a 1 b two 1"


def test_render_text_names_all_missing_values():
    with pytest.raises(TemplateError, match=r"@A@, @B@"):
        render_text("@B@ @A@ @C@", {"C": 1}, "t.in")


def test_render_text_leaves_apache_and_shell_variables_alone():
    text = 'x ${APACHE_LOG_DIR} $1 "$@" user@host %{GLOBAL} @lower@'
    assert render_text(text, {}) == text


def test_placeholders_lists_names():
    assert placeholders("@PORT@ and @APP_DIR@ but not @x@") == {
        "PORT", "APP_DIR"}


def test_apache_escape_escapes_quotes_and_refuses_line_breaks():
    assert apache_escape('/srv/my "app"') == '/srv/my \\"app\\"'
    with pytest.raises(TemplateError, match="line break"):
        apache_escape("/srv/app\nLoadModule x /y")
    with pytest.raises(TemplateError, match="backslash"):
        apache_escape("C:\\")


def test_blocks_file_has_every_block_express_renders():
    blocks = Blocks("blocks.conf.in").blocks
    assert {"load_module", "run_as", "mpm_threaded", "mpm_prefork",
            "keep_alive_on", "keep_alive_off", "access_log", "python_path",
            "setenv", "passenv", "static_files", "static_exclude",
            "url_alias_dir", "url_alias_file", "include_file"} <= set(blocks)
    for mode in express.MODES:
        assert "app_" + mode in blocks
    assert set(Blocks("module-config.conf.in").blocks) == {
        "load_module", "python_home"}


def test_templates_ship_inside_the_package():
    names = {p.name for p in pathlib.Path(
        express.__file__).parent.joinpath("templates").iterdir()}
    assert {"httpd.conf.in", "blocks.conf.in", "apachectl.in",
            "module-app.wsgi.in", "module-config.conf.in"} <= names


# --- MPM sizing --------------------------------------------------------------

def test_mpm_sizing_threaded_defaults_to_processes_times_threads():
    s = express.mpm_sizing("event", 3, 5)
    assert (s["PROCESSES"], s["THREADS"], s["SERVER_LIMIT"],
            s["MAX_CLIENTS"]) == (3, 5, 3, 15)
    # Apache wants MaxSpareThreads >= MinSpareThreads + ThreadsPerChild.
    assert s["MAX_SPARE"] >= s["MIN_SPARE"] + s["THREADS"]


def test_mpm_sizing_threaded_max_clients_rounds_up_to_whole_processes():
    s = express.mpm_sizing("worker", 1, 5, max_clients=12)
    assert (s["PROCESSES"], s["SERVER_LIMIT"], s["MAX_CLIENTS"]) == (1, 3, 15)


def test_mpm_sizing_threaded_max_clients_below_capacity_caps_processes():
    s = express.mpm_sizing("event", 4, 5, max_clients=10)
    assert (s["PROCESSES"], s["SERVER_LIMIT"], s["MAX_CLIENTS"]) == (2, 2, 10)


def test_mpm_sizing_prefork_runs_one_process_per_thread():
    s = express.mpm_sizing("prefork", 2, 3)
    assert (s["START"], s["MAX_CLIENTS"]) == (6, 6)
    assert s["MAX_SPARE"] > s["START"]     # MaxSpare must exceed MinSpare
    s = express.mpm_sizing("prefork", 2, 3, max_clients=20)
    assert (s["START"], s["MAX_CLIENTS"], s["MAX_SPARE"]) == (6, 20, 20)


def test_capacity_text_names_processes_threads_and_mpm():
    assert express.capacity_text(express.mpm_sizing("event", 1, 5)) == \
        "5 (1 process x 5 threads, event MPM)"
    assert express.capacity_text(
        express.mpm_sizing("worker", 2, 5, max_clients=20)) == \
        "10 (2 processes x 5 threads, worker MPM; at most 20)"
    assert "prefork MPM" in express.capacity_text(
        express.mpm_sizing("prefork", 1, 5))


# --- httpd.conf -------------------------------------------------------------

def test_httpd_conf_defaults(layout):
    setup = setup_for(layout, str(layout["script"]))
    conf = conf_of(setup)
    root = str(layout["server_root"])
    assert directives(conf, "ServerRoot") == ['"%s"' % root]
    assert directives(conf, "PidFile") == ['"%s/httpd.pid"' % root]
    assert directives(conf, "Listen") == ["8000"]
    assert directives(conf, "ErrorLog") == ['"%s/logs/error_log"' % root]
    assert directives(conf, "LogLevel") == ["warn"]
    assert directives(conf, "CustomLog") == []
    assert directives(conf, "LimitRequestBody") == ["10485760"]
    assert directives(conf, "KeepAlive") == ["On"]
    assert directives(conf, "KeepAliveTimeout") == ["2"]
    assert directives(conf, "TypesConfig") == ['"/etc/mime.types"']
    assert directives(conf, "User") == ["www-data"]
    assert directives(conf, "Group") == ["www-data"]
    assert directives(conf, "WSGIPythonHome") == ['"%s"' % sys.prefix]
    assert directives(conf, "WSGIPythonPath") == ['"%s"' % layout["app"]]
    assert directives(conf, "WSGIScriptAlias") == [
        '/ "%s"' % layout["script"]]
    assert directives(conf, "WSGICallableObject") == ['"application"']
    assert directives(conf, "WSGIApplicationGroup") == ['"%{GLOBAL}"']
    assert directives(conf, "WSGIScriptReloading") == ["Off"]
    assert directives(conf, "DocumentRoot") == ['"%s/htdocs"' % root]
    assert "RewriteEngine" not in conf
    assert "@" not in conf
    # Only the script itself is granted in its directory.
    assert '<Directory "%s">\n    <Files "hello.wsgi">\n        Require all ' \
        'granted' % layout["app"] in conf


def test_httpd_conf_loads_only_modules_not_built_in(layout):
    conf = conf_of(setup_for(layout, str(layout["script"]), "--access-log"))
    loaded = [line.split()[1] for line in conf.splitlines()
              if line.startswith("LoadModule")]
    # Debian compiles in mod_unixd and mod_log_config.
    assert loaded == ["mpm_event_module", "authz_core_module", "mime_module",
                      "tether_module"]
    assert 'LoadModule tether_module "%s"' % layout["module"] in conf

    conf = conf_of(setup_for(layout, str(layout["script"]), "--access-log",
                             apache=fake_apache(layout, builtins=("core.c",))))
    loaded = [line.split()[1] for line in conf.splitlines()
              if line.startswith("LoadModule")]
    assert "unixd_module" in loaded and "log_config_module" in loaded


@pytest.mark.parametrize("mpm", ["event", "worker"])
def test_httpd_conf_threaded_mpm_block(layout, mpm):
    conf = conf_of(setup_for(layout, "--server-mpm", mpm, "--processes", "3",
                             "--threads", "4"))
    assert 'LoadModule mpm_%s_module "%s/mod_mpm_%s.so"' % (
        mpm, layout["modules"], mpm) in conf
    for name, value in (("StartServers", "3"), ("ServerLimit", "3"),
                        ("ThreadLimit", "4"), ("ThreadsPerChild", "4"),
                        ("MaxRequestWorkers", "12"),
                        ("MaxConnectionsPerChild", "0")):
        assert directives(conf, name) == [value], name
    assert "MinSpareServers" not in conf


def test_httpd_conf_prefork_mpm_block(layout):
    conf = conf_of(setup_for(layout, "--server-mpm", "prefork",
                             "--processes", "2", "--threads", "3",
                             "--max-clients", "10"))
    assert "LoadModule mpm_prefork_module" in conf
    assert "mpm_event_module" not in conf
    for name, value in (("StartServers", "6"), ("ServerLimit", "10"),
                        ("MaxRequestWorkers", "10"),
                        ("MinSpareServers", "6"), ("MaxSpareServers", "10")):
        assert directives(conf, name) == [value], name
    assert "ThreadsPerChild" not in conf


def test_httpd_conf_default_mpm_falls_back_to_worker_then_prefork(layout):
    (layout["modules"] / "mod_mpm_event.so").unlink()
    assert "mpm_worker_module" in conf_of(setup_for(layout))
    (layout["modules"] / "mod_mpm_worker.so").unlink()
    conf = conf_of(setup_for(layout))
    assert "mpm_prefork_module" in conf
    assert directives(conf, "StartServers") == ["5"]


def test_httpd_conf_listen_host_and_port(layout):
    setup = setup_for(layout, "--host", "127.0.0.1", "--port", "8123")
    assert directives(conf_of(setup), "Listen") == ["127.0.0.1:8123"]
    assert dict(setup.summary)["Server URL"] == "http://127.0.0.1:8123/"
    setup = setup_for(layout, "--host", "::1", "--port", "8123")
    assert directives(conf_of(setup), "Listen") == ["[::1]:8123"]
    assert dict(setup.summary)["Server URL"] == "http://[::1]:8123/"


def test_httpd_conf_log_to_terminal_and_access_log(layout):
    conf = conf_of(setup_for(layout, "--log-to-terminal", "--access-log",
                             "--log-level", "debug"))
    assert directives(conf, "ErrorLog") == ['"/dev/stderr"']
    assert directives(conf, "CustomLog") == ['"/dev/stdout" common']
    assert directives(conf, "LogLevel") == ["debug"]


def test_httpd_conf_log_directory_overrides_log_to_terminal(layout):
    logs = layout["root"] / "logs"
    setup = setup_for(layout, "--log-to-terminal", "--access-log",
                      "--log-directory", str(logs))
    conf = conf_of(setup)
    assert directives(conf, "ErrorLog") == ['"%s/error_log"' % logs]
    assert directives(conf, "CustomLog") == ['"%s/access_log" common' % logs]
    assert str(logs) in setup.dirs


def test_httpd_conf_limits_and_keep_alive(layout):
    conf = conf_of(setup_for(layout, "--limit-request-body", "0",
                             "--keep-alive-timeout", "0"))
    assert directives(conf, "LimitRequestBody") == ["0"]
    assert directives(conf, "KeepAlive") == ["Off"]
    assert "KeepAliveTimeout" not in conf
    conf = conf_of(setup_for(layout, "--keep-alive-timeout", "15"))
    assert directives(conf, "KeepAliveTimeout") == ["15"]


def test_httpd_conf_environment(layout):
    conf = conf_of(setup_for(layout, "--setenv", "GREETING", 'say "hi"',
                             "--setenv", "EMPTY", "", "--passenv", "HOME"))
    assert directives(conf, "SetEnv") == ['GREETING "say \\"hi\\""',
                                          'EMPTY ""']
    assert directives(conf, "PassEnv") == ["HOME"]
    assert "LoadModule env_module" in conf


def test_httpd_conf_python_path_follows_working_directory(layout):
    extra = layout["root"] / "lib"
    conf = conf_of(setup_for(layout, "--python-path", str(extra),
                             "--python-path", str(layout["app"])))
    assert directives(conf, "WSGIPythonPath") == [
        '"%s:%s"' % (layout["app"], extra)]


def test_httpd_conf_refuses_python_path_with_colon(layout):
    with pytest.raises(express.SetupError, match="':'"):
        setup_for(layout, "--python-path", "/srv/a:b")


def test_httpd_conf_application_options(layout):
    conf = conf_of(setup_for(
        layout, str(layout["script"]), "--callable-object", "app",
        "--mount-point", "/sub/", "--application-group", "site one",
        "--reload-on-changes", "--chunked-request", "--map-head-to-get",
        "Off"))
    assert directives(conf, "WSGIScriptAlias") == [
        '/sub "%s"' % layout["script"]]
    assert directives(conf, "WSGICallableObject") == ['"app"']
    assert directives(conf, "WSGIApplicationGroup") == ['"site one"']
    assert directives(conf, "WSGIScriptReloading") == ["On"]
    assert directives(conf, "WSGIChunkedRequest") == ["On"]
    assert directives(conf, "WSGIMapHEADToGET") == ["Off"]


def test_httpd_conf_disable_reloading_wins(layout):
    conf = conf_of(setup_for(layout, "--reload-on-changes",
                             "--disable-reloading"))
    assert directives(conf, "WSGIScriptReloading") == ["Off"]


def test_httpd_conf_document_root_serves_files_before_the_application(
        layout):
    docs = layout["root"] / "docs"
    docs.mkdir()
    static = layout["root"] / "static"
    static.mkdir()
    conf = conf_of(setup_for(layout, "--document-root", str(docs),
                             "--url-alias", "/static/", str(static),
                             "--url-alias", "/robots.txt",
                             str(layout["script"]), str(layout["script"])))
    assert directives(conf, "DocumentRoot") == ['"%s"' % docs]
    assert "LoadModule rewrite_module" in conf
    assert "LoadModule alias_module" in conf
    rewrite = conf[conf.index("RewriteEngine On"):]
    # The alias URLs are excluded first, then an existing file is mapped.
    assert directives(rewrite, "RewriteCond") == [
        '"%{REQUEST_URI}" "!^/static(/|$)"',
        '"%{REQUEST_URI}" "!^/robots\\.txt(/|$)"',
        '"%s%%{REQUEST_URI}" -f' % docs]
    assert directives(rewrite, "RewriteRule") == [
        '"^" "%s%%{REQUEST_URI}" [L]' % docs]
    assert directives(conf, "Alias") == [
        '"/static" "%s"' % static, '"/robots.txt" "%s"' % layout["script"]]
    # A directory alias grants the directory, a file alias only the file.
    assert '<Directory "%s">\n    AllowOverride None\n    Require all ' \
        'granted' % static in conf
    assert conf.count('<Files "hello.wsgi">') == 2


def test_httpd_conf_document_root_escapes_rewrite_specials(layout):
    docs = layout["root"] / "a$1%b"
    docs.mkdir()
    conf = conf_of(setup_for(layout, "--document-root", str(docs)))
    escaped = str(docs).replace("$", "\\$").replace("%", "\\%")
    assert directives(conf, "RewriteRule") == [
        '"^" "%s%%{REQUEST_URI}" [L]' % escaped]


def test_httpd_conf_url_alias_to_missing_target_is_a_directory(layout):
    target = layout["root"] / "later"
    conf = conf_of(setup_for(layout, "--url-alias", "/later", str(target)))
    assert '<Directory "%s">' % target in conf
    assert "RewriteEngine" not in conf


def test_httpd_conf_include_files_come_last(layout):
    extra = layout["root"] / "extra.conf"
    extra.write_text("# nothing\n")
    setup = setup_for(layout, "--include-file", str(extra),
                      "--include-file", str(layout["root"] / "missing.conf"))
    conf = conf_of(setup)
    assert conf.rstrip().splitlines()[-2:] == [
        'IncludeOptional "%s"' % extra,
        'IncludeOptional "%s"' % (layout["root"] / "missing.conf")]
    assert len(setup.warnings) == 1 and "missing.conf" in setup.warnings[0]


def test_httpd_conf_names_the_run_as_account(layout):
    args = cli.make_parser().parse_args(
        ["start-server", "--server-root", str(layout["server_root"])])
    setup = express.build(args, fake_apache(layout),
                          Account(None, 1234, None, 5678),
                          str(layout["module"]), account_note="because")
    conf = conf_of(setup)
    assert directives(conf, "User") == ["#1234"]
    assert directives(conf, "Group") == ["#5678"]
    assert dict(setup.summary)["Run As"] == "#1234:#5678 (because)"


def test_httpd_conf_records_the_command_line_on_one_line(layout):
    args = cli.make_parser().parse_args(
        ["start-server", "--server-root", str(layout["server_root"])])
    setup = express.build(args, fake_apache(layout), ACCOUNT,
                          str(layout["module"]),
                          command_line="tether-express x\nLoadModule y z")
    assert "\nLoadModule y z" not in conf_of(setup)
    assert "x\\nLoadModule y z" in conf_of(setup)


def test_build_rejects_bad_values(layout):
    for options, message in (
            (["--port", "0"], "--port must be at least 1"),
            (["--port", "70000"], "not a TCP port"),
            (["--threads", "0"], "--threads must be at least 1"),
            (["--processes", "0"], "--processes must be at least 1"),
            (["--max-clients", "0"], "--max-clients must be at least 1"),
            (["--mount-point", "app"], "must start with /"),
            (["--url-alias", "static", "/tmp"], "must start with /"),
            (["--setenv", "BAD NAME", "x"], "not a variable name"),
            (["--passenv", "A=B"], "not a variable name"),
            (["--callable-object", "not-a-name"], "not a Python name"),
            (["--document-root", "/nonexistent/docs"], "not a directory"),
            (["/nonexistent/app.wsgi"], "does not exist"),
            (["--application-type", "module", "no-such.mod-ule"],
             "not a Python module name"),
            (["--limit-request-body", "3000000000"], "at most")):
        with pytest.raises(express.SetupError, match=re.escape(message)):
            setup_for(layout, *options)


def test_build_names_a_missing_module_and_why(layout):
    (layout["modules"] / "mod_rewrite.so").unlink()
    docs = layout["root"] / "docs"
    docs.mkdir()
    with pytest.raises(ApacheError, match=r"mod_rewrite\.so .*--document-root"):
        setup_for(layout, "--document-root", str(docs))


# --- applications ------------------------------------------------------------

def test_no_script_serves_the_default_page(layout):
    setup = setup_for(layout)
    assert directives(conf_of(setup), "WSGIScriptAlias") == [
        '/ "%s"' % express.DEFAULT_APP]
    assert "default page" in dict(setup.summary)["Application"]
    namespace = {}
    exec(compile(pathlib.Path(express.DEFAULT_APP).read_text(),
                 express.DEFAULT_APP, "exec"), namespace)
    seen = []
    body = b"".join(namespace["application"](
        {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/x<y"},
        lambda status, headers: seen.append((status, dict(headers)))))
    assert seen[0][0] == "200 OK"
    assert seen[0][1]["Content-Length"] == str(len(body))
    assert b"Tether is running" in body and b"/x&lt;y" in body


def test_entry_point_option_wins_over_positional(layout):
    other = layout["app"] / "other.wsgi"
    other.write_text("application = None\n")
    conf = conf_of(setup_for(layout, str(layout["script"]), "--entry-point",
                             str(other)))
    assert directives(conf, "WSGIScriptAlias") == ['/ "%s"' % other]


def test_module_application_goes_through_a_generated_shim(layout,
                                                          monkeypatch):
    pkg = layout["app"] / "mysite"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "wsgi.py").write_text("def app(environ, start_response):\n"
                                 "    return [b'from module']\n")
    setup = setup_for(layout, "--application-type", "module",
                      "--callable-object", "app", "mysite.wsgi")
    shim_path = str(layout["server_root"] / "module-app.wsgi")
    assert directives(conf_of(setup), "WSGIScriptAlias") == [
        '/ "%s"' % shim_path]
    assert directives(conf_of(setup), "WSGICallableObject") == ['"app"']
    shim, mode = setup.files[shim_path]
    assert mode == 0o644
    # The shim, run as Apache would, exposes the module's callable.
    monkeypatch.syspath_prepend(str(layout["app"]))
    namespace = {}
    exec(compile(shim, shim_path, "exec"), namespace)
    assert namespace["app"](None, None) == [b"from module"]
    sys.modules.pop("mysite.wsgi", None)
    sys.modules.pop("mysite", None)


# --- summary, apachectl, writing ---------------------------------------------

def test_summary_reports_url_root_mode_capacity_and_logs(layout):
    setup = setup_for(layout, "--port", "8123", "--processes", "2",
                      "--access-log")
    summary = dict(setup.summary)
    root = str(layout["server_root"])
    assert summary["Server URL"] == "http://localhost:8123/"
    assert summary["Server Root"] == root
    assert summary["Operating Mode"] == "embedded"
    assert summary["Request Capacity"] == \
        "10 (2 processes x 5 threads, event MPM)"
    assert summary["Error Log"] == "%s/logs/error_log (warn)" % root
    assert summary["Access Log"] == "%s/logs/access_log" % root
    text = express.summary_text(setup)
    assert "Operating Mode   : embedded\n" in text
    summary = dict(setup_for(layout, "--log-to-terminal").summary)
    assert summary["Error Log"] == "terminal (warn)"


def test_needs_cover_what_apache_children_read(layout, monkeypatch):
    docs = layout["root"] / "docs"
    docs.mkdir()
    setup = setup_for(layout, str(layout["script"]), "--document-root",
                      str(docs), "--python-path", "/srv/lib")
    paths = {n.path: n for n in setup.needs}
    assert not paths[str(layout["script"])].optional
    assert str(docs) in paths
    assert paths[str(layout["module"])].python
    assert paths["/srv/lib"].optional
    assert os.path.abspath(sys.prefix) in paths
    # An explicit working directory must be readable; a defaulted one (the
    # directory tether-express runs in) is only worth a warning.
    assert (str(layout["app"]), "the WSGI script's directory") in [
        (n.path, n.what) for n in setup.needs]
    assert [n.what for n in setup.needs].count("the working directory") == 1
    assert setup.soft_needs == []
    monkeypatch.chdir(layout["root"])
    args = cli.make_parser().parse_args(
        ["start-server", str(layout["script"]),
         "--server-root", str(layout["server_root"])])
    setup = express.build(args, fake_apache(layout), ACCOUNT,
                          str(layout["module"]))
    assert "the working directory" not in [n.what for n in setup.needs]
    assert [(n.path, n.what) for n in setup.soft_needs] == [
        (str(layout["root"]), "the working directory")]


def test_default_server_root_is_per_host_port_and_user(monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    assert express.default_server_root(None, 8000, uid=33) == \
        "/tmp/tether-localhost:8000:33"
    assert express.default_server_root("127.0.0.1", 80, uid=0,
                                       tmpdir="/var/tmp") == \
        "/var/tmp/tether-127.0.0.1:80:0"
    monkeypatch.setenv("TMPDIR", "/scratch")
    assert express.default_server_root(None, 8000, uid=1).startswith(
        "/scratch/tether-")


def test_apachectl_runs_httpd_with_the_generated_config(layout, tmp_path):
    log = tmp_path / "httpd-args"
    httpd = tmp_path / "fake httpd"
    httpd.write_text('#!/bin/sh\necho "$PWD|$*" > "%s"\n' % log)
    httpd.chmod(0o755)
    apache = Apache(str(httpd), str(layout["modules"]), (), os.devnull)
    setup = setup_for(layout, apache=apache)
    express.write(setup)
    apachectl = layout["server_root"] / "apachectl"
    assert stat.S_IMODE(apachectl.stat().st_mode) == 0o755
    conf = str(layout["server_root"] / "httpd.conf")
    import subprocess
    for action, expected in (("configtest", "-f %s -t" % conf),
                             ("graceful", "-f %s -k graceful" % conf),
                             ("foreground", "-f %s -DFOREGROUND" % conf)):
        subprocess.run([str(apachectl), action], check=True)
        assert log.read_text().strip() == "%s|%s" % (layout["app"], expected)
    bad = subprocess.run([str(apachectl), "bogus"], stderr=subprocess.PIPE,
                         text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr


def test_write_creates_an_inspectable_server_root(layout):
    setup = setup_for(layout)
    express.write(setup)
    root = layout["server_root"]
    assert sorted(p.name for p in root.iterdir()) == [
        "apachectl", "htdocs", "httpd.conf", "logs"]
    for path in (root, root / "logs", root / "htdocs"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert (root / "httpd.conf").read_text() == conf_of(setup)
    # Running it again rewrites the same files.
    express.write(setup)
    assert not list(root.glob("*.tmp"))


def test_write_refuses_a_symlinked_or_foreign_server_root(layout, tmp_path):
    setup = setup_for(layout)
    target = tmp_path / "elsewhere"
    target.mkdir()
    layout["server_root"].symlink_to(target)
    with pytest.raises(express.SetupError, match="not a directory"):
        express.write(setup)
    layout["server_root"].unlink()
    layout["server_root"].mkdir()
    with pytest.raises(express.SetupError, match="belongs to another user"):
        express.write(setup, euid=os.geteuid() + 1)


def test_module_config_lines(monkeypatch):
    text = express.module_config_lines('/x/"mod_tether".so',
                                       with_python_home=False)
    assert text == 'LoadModule tether_module "/x/\\"mod_tether\\".so"\n'
    text = express.module_config_lines("/x/mod_tether.so",
                                       with_python_home=True)
    assert text.splitlines()[1] == 'WSGIPythonHome "%s"' % sys.prefix


def test_needs_python_home_for_a_virtual_environment(monkeypatch):
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert express.needs_python_home()
    import sysconfig
    monkeypatch.setattr(sys, "prefix", "/usr")
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: "/usr" if name == "prefix" else None)
    assert not express.needs_python_home()


# --- apache-conf/ ------------------------------------------------------------

APACHE_CONF_VALUES = {
    "tether.load.in": {"TETHER_MODULE", "PYTHON_HOME"},
    "examples/site-embedded.conf.in": {"PORT", "APP_DIR"},
}


@pytest.mark.parametrize("name", sorted(APACHE_CONF_VALUES))
def test_apache_conf_template_placeholders_are_documented(name):
    path = APACHE_CONF / name
    text = path.read_text()
    assert placeholders(text) == APACHE_CONF_VALUES[name]
    for value in APACHE_CONF_VALUES[name]:
        assert re.search(r"^#\s+%s\s" % value, text, re.MULTILINE), value
    rendered = render_file(path, **{v: "/VALUE/" + v.lower()
                                    for v in APACHE_CONF_VALUES[name]})
    assert placeholders(rendered) == set()
    with pytest.raises(TemplateError):
        render_file(path)


def test_apache_conf_every_template_is_listed():
    found = {str(p.relative_to(APACHE_CONF))
             for p in APACHE_CONF.rglob("*.in")}
    assert found == set(APACHE_CONF_VALUES)


def test_apache_conf_site_mounts_hello_wsgi():
    text = render_file(APACHE_CONF / "examples/site-embedded.conf.in",
                       PORT=8123, APP_DIR="/srv/hello")
    assert directives(text, "Listen") == ["8123"]
    assert "<VirtualHost *:8123>" in text
    assert directives(text, "WSGIScriptAlias") == ['/ "/srv/hello/hello.wsgi"']
    assert (APACHE_CONF / "examples" / "hello.wsgi").is_file()


def test_apache_conf_tether_load_matches_module_config():
    rendered = render_file(APACHE_CONF / "tether.load.in",
                           TETHER_MODULE="/m/mod_tether.so",
                           PYTHON_HOME="/opt/venv")
    lines = [line for line in rendered.splitlines()
             if line and not line.startswith("#")]
    assert lines == ['LoadModule tether_module "/m/mod_tether.so"',
                     'WSGIPythonHome "/opt/venv"']


def test_apache_conf_tether_conf_directives_are_all_commented():
    text = (APACHE_CONF / "tether.conf").read_text()
    active = [line.strip() for line in text.splitlines()
              if line.strip() and not line.strip().startswith("#")]
    assert active == ["<IfModule tether_module>", "</IfModule>"]
    shown = set(re.findall(r"^\s*#(WSGI\w+)", text, re.MULTILINE))
    assert {"WSGIPythonHome", "WSGIPythonPath", "WSGIApplicationGroup",
            "WSGIScriptReloading", "WSGIRestrictEmbedded"} <= shown


def test_apache_conf_hello_app_answers():
    path = APACHE_CONF / "examples" / "hello.wsgi"
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    seen = []
    body = b"".join(namespace["application"](
        {"SCRIPT_NAME": "", "PATH_INFO": "/"},
        lambda status, headers: seen.append(status)))
    assert seen == ["200 OK"]
    assert body.splitlines()[0] == b"Hello from Tether"
