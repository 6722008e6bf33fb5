"""Rendering of tether-express's templates into httpd.conf and friends, and
of the example configurations in apache-conf/.  No Apache is started."""

import os
import pathlib
import re
import shlex
import shutil
import stat
import sys
import tempfile

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
    """A fake Apache (modules directory with every MPM), a module, an app.

    The server root is in a short directory of its own: the daemon sockets
    are made in it, and a Unix socket's path is short."""
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
    short = tempfile.mkdtemp(prefix="tx-", dir="/tmp")
    yield {"root": tmp_path, "modules": modules, "app": app,
           "script": script, "module": module,
           "server_root": pathlib.Path(short) / "server"}
    shutil.rmtree(short)


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
    """The argument strings of every `name` directive in a config text
    (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.split(None, 1)[1] if " " in line.strip() else ""
            for line in (raw.strip() for raw in text.splitlines())
            if line.split(None, 1)[:1] == [name]]


def script_alias(conf):
    """(URL, script) of the one WSGIScriptAlias, and its options."""
    (args,) = directives(conf, "WSGIScriptAlias")
    words = shlex.split(args)
    return (words[0], words[1]), dict(w.split("=", 1) for w in words[2:])


def daemon_process(conf):
    """The name and {option: value} of the one WSGIDaemonProcess, read as
    mod_tether reads it (quotes removed, \\" and \\\\ unescaped)."""
    (args,) = directives(conf, "WSGIDaemonProcess")
    words = shlex.split(args)
    options = dict(w.split("=", 1) for w in words[1:])
    assert len(options) == len(words) - 1, "an option given twice"
    return words[0], options


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
    assert (s["START"], s["THREADS"], s["SERVER_LIMIT"],
            s["MAX_CLIENTS"]) == (3, 5, 3, 15)
    # Apache wants MaxSpareThreads >= MinSpareThreads + ThreadsPerChild.
    assert s["MAX_SPARE"] >= s["MIN_SPARE"] + s["THREADS"]


def test_mpm_sizing_threaded_max_clients_rounds_up_to_whole_processes():
    s = express.mpm_sizing("worker", 1, 5, max_clients=12)
    assert (s["START"], s["SERVER_LIMIT"], s["MAX_CLIENTS"]) == (1, 3, 15)


def test_mpm_sizing_threaded_max_clients_below_capacity_caps_processes():
    s = express.mpm_sizing("event", 4, 5, max_clients=10)
    assert (s["START"], s["SERVER_LIMIT"], s["MAX_CLIENTS"]) == (2, 2, 10)


def test_mpm_sizing_prefork_runs_one_process_per_thread():
    s = express.mpm_sizing("prefork", 2, 3)
    assert (s["START"], s["MAX_CLIENTS"], s["SERVER_LIMIT"]) == (6, 6, 6)
    assert s["MIN_SPARE"] == s["START"]
    assert s["MAX_SPARE"] > s["MIN_SPARE"]  # MaxSpare must exceed MinSpare
    s = express.mpm_sizing("prefork", 2, 3, max_clients=20)
    assert (s["START"], s["MAX_CLIENTS"], s["MAX_SPARE"]) == (6, 20, 20)


# mod_wsgi-express 6.1.1's Apache capacity in daemon mode (its "Server
# Capacity", prefork figure), by daemon processes x threads.
MOD_WSGI_EXPRESS_CLIENTS = {(1, 5): 20, (2, 3): 20, (1, 7): 20, (1, 8): 22,
                            (2, 5): 25, (3, 5): 32, (4, 10): 70,
                            (3, 20): 100}


@pytest.mark.parametrize("processes, threads", sorted(
    MOD_WSGI_EXPRESS_CLIENTS))
def test_daemon_mpm_sizing_gives_apache_room_like_mod_wsgi_express(
        processes, threads):
    most = MOD_WSGI_EXPRESS_CLIENTS[processes, threads]
    assert express.daemon_clients(processes, threads) == most
    s = express.daemon_mpm_sizing("prefork", processes, threads)
    assert (s["MAX_CLIENTS"], s["SERVER_LIMIT"], s["THREADS"]) == \
        (most, most, 1)
    assert 1 <= s["START"] == s["MIN_SPARE"] < s["MAX_SPARE"]
    s = express.daemon_mpm_sizing("event", processes, threads)
    # Whole children of 10 to 25 threads, at least `most` in all.
    assert 10 <= s["THREADS"] <= 25
    assert s["MAX_CLIENTS"] == s["SERVER_LIMIT"] * s["THREADS"]
    assert most <= s["MAX_CLIENTS"] < most + s["THREADS"]
    assert 1 <= s["START"] <= s["SERVER_LIMIT"]
    assert s["MIN_SPARE"] == s["START"] * s["THREADS"]
    # Apache wants MaxSpareThreads >= MinSpareThreads + ThreadsPerChild.
    assert s["MAX_SPARE"] >= s["MIN_SPARE"] + s["THREADS"]


def test_daemon_mpm_sizing_defaults_and_max_clients():
    s = express.daemon_mpm_sizing("event", 1, 5)
    assert (s["START"], s["SERVER_LIMIT"], s["THREADS"], s["MAX_CLIENTS"],
            s["MIN_SPARE"], s["MAX_SPARE"]) == (1, 2, 10, 20, 10, 20)
    # --max-clients wins, rounded up to whole children...
    s = express.daemon_mpm_sizing("worker", 4, 10, max_clients=50)
    assert (s["SERVER_LIMIT"], s["THREADS"], s["MAX_CLIENTS"]) == (4, 13, 52)
    # ...and a small one is one child of exactly that many threads.
    s = express.daemon_mpm_sizing("event", 1, 5, max_clients=7)
    assert (s["SERVER_LIMIT"], s["THREADS"], s["MAX_CLIENTS"]) == (1, 7, 7)
    s = express.daemon_mpm_sizing("event", 1, 5, max_clients=1000)
    assert (s["SERVER_LIMIT"], s["THREADS"], s["MAX_CLIENTS"],
            s["START"]) == (40, 25, 1000, 4)
    s = express.daemon_mpm_sizing("prefork", 1, 5, max_clients=100)
    assert (s["START"], s["MIN_SPARE"], s["MAX_SPARE"],
            s["MAX_CLIENTS"]) == (5, 5, 10, 100)


def test_daemon_capacity_texts():
    assert express.daemon_capacity_text(1, 5) == "5 (1 process x 5 threads)"
    assert express.daemon_capacity_text(2, 1) == "2 (2 processes x 1 thread)"
    assert express.server_capacity_text(
        express.daemon_mpm_sizing("event", 1, 5)) == \
        "20 (event MPM: up to 2 processes x 10 threads)"
    assert express.server_capacity_text(
        express.daemon_mpm_sizing("prefork", 1, 5)) == \
        "20 (prefork MPM: up to 20 processes)"


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
    assert directives(conf, "ListenBacklog") == ["500"]
    assert directives(conf, "WSGIPythonHome") == ['"%s"' % sys.prefix]
    assert script_alias(conf)[0] == ("/", str(layout["script"]))
    assert directives(conf, "WSGICallableObject") == ['"application"']
    assert directives(conf, "WSGIApplicationGroup") == ['"%{GLOBAL}"']
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


# --- daemon mode (the default) ---------------------------------------------

# mod_wsgi-express 6.1.1's WSGIDaemonProcess options with no option given
# (mod_wsgi-express setup-server --port 8000; its python-eggs, lang,
# locale, interrupt-timeout, response-flush-delay and server-metrics
# options have no counterpart here).
MOD_WSGI_EXPRESS_DAEMON = {
    "threads": "5", "maximum-requests": "0", "listen-backlog": "100",
    "queue-timeout": "45", "socket-timeout": "60", "connect-timeout": "15",
    "request-timeout": "60", "inactivity-timeout": "0",
    "startup-timeout": "15", "deadlock-timeout": "60",
    "graceful-timeout": "15", "eviction-timeout": "0",
    "restart-interval": "0", "cpu-time-limit": "0", "shutdown-timeout": "5",
    "send-buffer-size": "0", "receive-buffer-size": "0",
    "header-buffer-size": "0", "response-buffer-size": "0",
    "response-socket-timeout": "0",
}


def test_httpd_conf_daemon_mode_is_the_default(layout):
    setup = setup_for(layout, str(layout["script"]))
    conf = conf_of(setup)
    root = str(layout["server_root"])
    assert setup.mode == "daemon"
    assert directives(conf, "WSGIRestrictEmbedded") == ["On"]
    assert directives(conf, "WSGISocketPrefix") == ['"%s/wsgi"' % root]
    name, options = daemon_process(conf)
    assert name == "localhost:8000" == setup.process_group
    expected = dict(MOD_WSGI_EXPRESS_DAEMON)
    expected.update({
        "display-name": "(wsgi:localhost:8000:%d)" % os.geteuid(),
        "home": str(layout["app"]),
        "python-home": sys.prefix,
        "python-path": str(layout["app"])})
    assert options == expected        # one process: no processes=
    assert setup.display_name == expected["display-name"]
    # The application goes to the group, in its main interpreter; naming
    # both groups on WSGIScriptAlias preloads the script.
    assert script_alias(conf) == (
        ("/", str(layout["script"])),
        {"process-group": "localhost:8000", "application-group": "%{GLOBAL}"})
    assert directives(conf, "WSGIProcessGroup") == ['"localhost:8000"']
    assert directives(conf, "WSGIApplicationGroup") == ['"%{GLOBAL}"']
    # Python is set up on the group, not for Apache's children.
    assert directives(conf, "WSGIPythonPath") == []
    # mod_wsgi-express reloads a changed script in daemon mode.
    assert directives(conf, "WSGIScriptReloading") == ["On"]
    # Apache's children only proxy: room for 20 requests (event MPM).
    for name, value in (("StartServers", "1"), ("ServerLimit", "2"),
                        ("ThreadsPerChild", "10"),
                        ("MaxRequestWorkers", "20")):
        assert directives(conf, name) == [value], name
    # The group comes before the WSGIScriptAlias that names it.
    assert conf.index("WSGIDaemonProcess") < conf.index("WSGIScriptAlias")
    assert "@" not in conf


def test_httpd_conf_daemon_options_reach_the_group(layout):
    values = {"--request-timeout": 2, "--startup-timeout": 3,
              "--queue-timeout": 4, "--socket-timeout": 5,
              "--connect-timeout": 6, "--response-socket-timeout": 7,
              "--deadlock-timeout": 8, "--inactivity-timeout": 9,
              "--maximum-requests": 10, "--restart-interval": 11,
              "--cpu-time-limit": 12, "--graceful-timeout": 13,
              "--eviction-timeout": 14, "--shutdown-timeout": 15,
              "--daemon-backlog": 16, "--send-buffer-size": 1024,
              "--receive-buffer-size": 2048, "--header-buffer-size": 9000,
              "--response-buffer-size": 70000,
              "--memory-limit": 300000000}
    argv = ["--processes", "3", "--threads", "7", "--server-backlog", "99"]
    for option, value in values.items():
        argv += [option, str(value)]
    setup = setup_for(layout, *argv)
    conf = conf_of(setup)
    _, options = daemon_process(conf)
    for option, value in values.items():
        key = "listen-backlog" if option == "--daemon-backlog" \
            else option[2:]
        assert options.pop(key) == str(value), option
    assert options.pop("processes") == "3"
    assert options.pop("threads") == "7"
    assert set(options) == {"display-name", "home", "python-home",
                            "python-path"}
    assert directives(conf, "ListenBacklog") == ["99"]
    # Every numeric option of the CLI has its place in the template.
    assert set(express.DAEMON_DEFAULTS) == {
        o[2:].replace("-", "_") for o in values}
    summary = dict(setup.summary)
    assert summary["Request Capacity"] == "21 (3 processes x 7 threads)"
    assert summary["Request Timeout"] == "2 (seconds)"
    assert summary["Queue Backlog"] == "16 (connections)"
    assert summary["Maximum Requests"] == "10"
    assert summary["Inactivity Timeout"] == "9 (seconds)"
    assert summary["Restart Interval"] == "11 (seconds)"
    assert summary["CPU Time Limit"] == "12 (seconds)"
    assert summary["Memory Limit"] == "300000000 (bytes)"
    assert summary["Server Backlog"] == "99 (connections)"


def test_httpd_conf_daemon_memory_limit_only_when_given(layout):
    """As in mod_wsgi-express's httpd.conf, no memory-limit= by default;
    --memory-limit N gives memory-limit=N on the WSGIDaemonProcess line."""
    setup = setup_for(layout, str(layout["script"]))
    _, options = daemon_process(conf_of(setup))
    assert "memory-limit" not in options
    assert "Memory Limit" not in dict(setup.summary)
    setup = setup_for(layout, "--memory-limit", "1048576")
    _, options = daemon_process(conf_of(setup))
    assert options["memory-limit"] == "1048576"
    setup = setup_for(layout, "--memory-limit", str(1 << 48))
    assert daemon_process(conf_of(setup))[1]["memory-limit"] == str(1 << 48)
    # Embedded mode has no daemon: the option has no effect and says so.
    setup = setup_for(layout, "--embedded-mode", "--memory-limit", "5000000")
    assert "memory-limit" not in conf_of(setup)
    assert setup.warnings == [
        "--memory-limit only applies to daemon mode: it has no effect "
        "with --embedded-mode"]


def test_httpd_conf_daemon_process_group_and_socket_prefix(layout):
    sockets = layout["server_root"].parent / "s"
    setup = setup_for(layout, "--process-group", 'my "site"',
                      "--socket-prefix", str(sockets), "--host", "127.0.0.1",
                      "--port", "8123")
    conf = conf_of(setup)
    name, options = daemon_process(conf)
    assert name == 'my "site"'
    assert options["display-name"] == '(wsgi:my "site")'
    assert directives(conf, "WSGIProcessGroup") == ['"my \\"site\\""']
    assert script_alias(conf)[1]["process-group"] == 'my "site"'
    assert directives(conf, "WSGISocketPrefix") == ['"%s/wsgi"' % sockets]
    assert str(sockets) in setup.dirs          # made by write()
    assert setup.socket_dir == str(sockets)
    assert (str(sockets), "the daemon socket directory") in [
        (n.path, n.what) for n in setup.needs]
    # Without --process-group: the listening host and port.
    setup = setup_for(layout, "--host", "127.0.0.1", "--port", "8123")
    assert daemon_process(conf_of(setup))[0] == "127.0.0.1:8123"
    assert dict(setup.summary)["Process Group"] == \
        "127.0.0.1:8123, processes shown as (wsgi:127.0.0.1:8123:%d)" \
        % os.geteuid()


def test_httpd_conf_daemon_values_with_backslashes_and_quotes(layout):
    odd = layout["root"] / 'a\\b "c"'
    odd.mkdir()
    conf = conf_of(setup_for(layout, "--working-directory", str(odd)))
    _, options = daemon_process(conf)
    assert options["home"] == str(odd)
    assert options["python-path"] == str(odd)


def test_httpd_conf_daemon_socket_prefix_too_long(layout, tmp_path):
    deep = tmp_path / ("d" * 70)
    with pytest.raises(express.SetupError,
                       match="too long for a Unix socket.*--socket-prefix"):
        setup_for(layout, "--socket-prefix", str(deep))
    # Embedded mode makes no sockets.
    setup_for(layout, "--embedded-mode", "--socket-prefix", str(deep))


def test_httpd_conf_daemon_processes_option_only_above_one(layout):
    _, options = daemon_process(conf_of(setup_for(layout, "--processes",
                                                  "2")))
    assert options["processes"] == "2"   # wsgi.multiprocess True
    _, options = daemon_process(conf_of(setup_for(layout)))
    assert "processes" not in options    # wsgi.multiprocess False


@pytest.mark.parametrize("options, expected", [
    ([], "On"),
    (["--reload-on-changes"], "On"),
    (["--disable-reloading"], "Off"),
    (["--reload-on-changes", "--disable-reloading"], "Off"),
    (["--embedded-mode"], "Off"),
    (["--embedded-mode", "--reload-on-changes"], "On"),
    (["--embedded-mode", "--reload-on-changes", "--disable-reloading"],
     "Off"),
])
def test_httpd_conf_script_reloading_by_mode(layout, options, expected):
    conf = conf_of(setup_for(layout, *options))
    assert directives(conf, "WSGIScriptReloading") == [expected]


def test_httpd_conf_daemon_mpm_sizing(layout):
    conf = conf_of(setup_for(layout, "--server-mpm", "prefork",
                             "--processes", "4", "--threads", "10"))
    for name, value in (("StartServers", "3"), ("ServerLimit", "70"),
                        ("MaxRequestWorkers", "70"), ("MinSpareServers", "3"),
                        ("MaxSpareServers", "7")):
        assert directives(conf, name) == [value], name
    conf = conf_of(setup_for(layout, "--max-clients", "50"))
    assert directives(conf, "MaxRequestWorkers") == ["52"]
    assert directives(conf, "ThreadsPerChild") == ["13"]


def test_httpd_conf_embedded_mode_keeps_python_in_apache(layout):
    setup = setup_for(layout, str(layout["script"]), "--embedded-mode")
    conf = conf_of(setup)
    assert setup.mode == "embedded"
    for absent in ("WSGIDaemonProcess", "WSGIRestrictEmbedded",
                   "WSGISocketPrefix", "WSGIProcessGroup"):
        assert directives(conf, absent) == [], absent
    assert directives(conf, "WSGIPythonPath") == ['"%s"' % layout["app"]]
    assert script_alias(conf) == (("/", str(layout["script"])), {})
    assert directives(conf, "WSGIScriptReloading") == ["Off"]
    assert directives(conf, "ListenBacklog") == ["500"]
    assert setup.socket_dir is None and setup.process_group is None
    assert "the daemon socket directory" not in [n.what for n in setup.needs]
    assert setup.warnings == []


def test_embedded_mode_warns_about_daemon_options(layout):
    setup = setup_for(layout, "--embedded-mode", "--maximum-requests", "5",
                      "--request-timeout", "60", "--process-group", "x")
    assert setup.warnings == [
        "--maximum-requests only applies to daemon mode: it has no effect "
        "with --embedded-mode",
        "--process-group only applies to daemon mode: it has no effect "
        "with --embedded-mode"]
    assert "maximum-requests" not in conf_of(setup)


@pytest.mark.parametrize("options, message", [
    (["--request-timeout", "-1"], "--request-timeout must be from 0 to"),
    (["--daemon-backlog", "70000"], "--daemon-backlog must be from 0 to "
                                    "65535, not 70000"),
    (["--header-buffer-size", "100"],
     "--header-buffer-size must be 0 (the default, 32768) or from 8192 "
     "to 16777216"),
    (["--send-buffer-size", "10"],
     "--send-buffer-size must be 0 (the system's default) or from 512"),
    (["--response-buffer-size", "1000"],
     "--response-buffer-size must be 0 (the default, 65536) or from "
     "65536"),
    # mod_tether refuses a memory-limit below 1 MiB (a unit mistake): the
    # CLI says so before Apache does.
    (["--memory-limit", "1000"],
     "--memory-limit must be 0 (no limit) or from 1048576 to "
     "281474976710656, not 1000"),
    (["--memory-limit", "1048575"], "--memory-limit must be 0 (no limit) "
                                    "or from 1048576"),
    (["--memory-limit", str((1 << 48) + 1)],
     "--memory-limit must be from 0 to 281474976710656"),
    (["--memory-limit", "-1"], "--memory-limit must be from 0 to"),
    (["--threads", "10001"], "--threads is at most 10000 in daemon mode"),
    (["--process-group", "%{GLOBAL}"], "cannot start with %"),
    (["--process-group", " "], "must not be empty"),
    (["--server-backlog", "0"], "--server-backlog must be at least 1"),
    (["--process-name", ""], "cannot name a process"),
])
def test_build_rejects_bad_daemon_values(layout, options, message):
    with pytest.raises(express.SetupError, match=re.escape(message)):
        setup_for(layout, *options)


def test_build_refuses_a_socket_prefix_that_is_a_file(layout):
    with pytest.raises(express.SetupError, match="is not a directory"):
        setup_for(layout, "--socket-prefix", str(layout["script"]))


def test_daemon_home_falls_back_to_the_server_root(layout, monkeypatch):
    """A defaulted working directory the account cannot enter: cli builds
    again with working_directory_unreadable, and the daemons start in the
    server root."""
    monkeypatch.chdir(layout["root"])
    args = cli.make_parser().parse_args(
        ["start-server", str(layout["script"]),
         "--server-root", str(layout["server_root"])])
    setup = express.build(args, fake_apache(layout), ACCOUNT,
                          str(layout["module"]))
    assert daemon_process(conf_of(setup))[1]["home"] == str(layout["root"])
    assert [n.what for n in setup.soft_needs] == ["the working directory"]
    setup = express.build(args, fake_apache(layout), ACCOUNT,
                          str(layout["module"]),
                          working_directory_unreadable=True)
    _, options = daemon_process(conf_of(setup))
    assert options["home"] == str(layout["server_root"]) == setup.daemon_home
    assert setup.soft_needs == []


def test_summary_in_daemon_mode_like_mod_wsgi_express(layout):
    setup = setup_for(layout, "--port", "8123")
    labels = [label for label, _ in setup.summary]
    summary = dict(setup.summary)
    assert summary["Operating Mode"] == "daemon"
    # What mod_wsgi-express prints, in its order, and a few more.
    for label, value in (
            ("Request Capacity", "5 (1 process x 5 threads)"),
            ("Request Timeout", "60 (seconds)"),
            ("Startup Timeout", "15 (seconds)"),
            ("Queue Backlog", "100 (connections)"),
            ("Queue Timeout", "45 (seconds)"),
            ("Socket Timeout", "60 (seconds)"),
            ("Connect Timeout", "15 (seconds)"),
            ("Server Capacity", "20 (event MPM: up to 2 processes x 10 "
                                "threads)"),
            ("Server Backlog", "500 (connections)"),
            ("Daemon Sockets", "%s/wsgi.*" % layout["server_root"])):
        assert summary.pop(label) == value, label
    assert labels.index("Request Timeout") < labels.index("Queue Timeout") \
        < labels.index("Server Capacity") < labels.index("Error Log")
    for absent in ("Maximum Requests", "Inactivity Timeout",
                   "Restart Interval", "CPU Time Limit", "Process Name"):
        assert absent not in summary
    summary = dict(setup_for(layout, "--request-timeout", "0",
                             "--process-name", "web-app").summary)
    assert summary["Request Timeout"] == "off"
    assert summary["Process Name"] == "web-app"


# --- embedded mode, and both -------------------------------------------------

@pytest.mark.parametrize("mpm", ["event", "worker"])
def test_httpd_conf_threaded_mpm_block(layout, mpm):
    conf = conf_of(setup_for(layout, "--embedded-mode", "--server-mpm", mpm,
                             "--processes", "3", "--threads", "4"))
    assert 'LoadModule mpm_%s_module "%s/mod_mpm_%s.so"' % (
        mpm, layout["modules"], mpm) in conf
    for name, value in (("StartServers", "3"), ("ServerLimit", "3"),
                        ("ThreadLimit", "4"), ("ThreadsPerChild", "4"),
                        ("MaxRequestWorkers", "12"),
                        ("MaxConnectionsPerChild", "0")):
        assert directives(conf, name) == [value], name
    assert "MinSpareServers" not in conf


def test_httpd_conf_prefork_mpm_block(layout):
    conf = conf_of(setup_for(layout, "--embedded-mode",
                             "--server-mpm", "prefork",
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
    conf = conf_of(setup_for(layout, "--embedded-mode"))
    assert "mpm_prefork_module" in conf
    assert directives(conf, "StartServers") == ["5"]
    conf = conf_of(setup_for(layout))
    assert "mpm_prefork_module" in conf
    assert directives(conf, "MaxRequestWorkers") == ["20"]


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
    options = ("--python-path", str(extra), "--python-path",
               str(layout["app"]))
    conf = conf_of(setup_for(layout, "--embedded-mode", *options))
    assert directives(conf, "WSGIPythonPath") == [
        '"%s:%s"' % (layout["app"], extra)]
    conf = conf_of(setup_for(layout, *options))
    assert daemon_process(conf)[1]["python-path"] == "%s:%s" % (
        layout["app"], extra)


def test_httpd_conf_refuses_python_path_with_colon(layout):
    with pytest.raises(express.SetupError, match="':'"):
        setup_for(layout, "--python-path", "/srv/a:b")


@pytest.mark.parametrize("mode", [[], ["--embedded-mode"]])
def test_httpd_conf_application_options(layout, mode):
    conf = conf_of(setup_for(
        layout, str(layout["script"]), "--callable-object", "app",
        "--mount-point", "/sub/", "--application-group", "site one",
        "--reload-on-changes", "--chunked-request", "--map-head-to-get",
        "Off", *mode))
    target, options = script_alias(conf)
    assert target == ("/sub", str(layout["script"]))
    if mode:
        assert options == {}
    else:
        assert options["application-group"] == "site one"
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
    assert script_alias(conf_of(setup))[0] == ("/", express.DEFAULT_APP)
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
    assert script_alias(conf)[0] == ("/", str(other))


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
    assert script_alias(conf_of(setup))[0] == ("/", shim_path)
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
                      "--access-log", "--embedded-mode")
    summary = dict(setup.summary)
    root = str(layout["server_root"])
    assert summary["Server URL"] == "http://localhost:8123/"
    assert summary["Server Root"] == root
    assert summary["Operating Mode"] == "embedded"
    assert summary["Request Capacity"] == \
        "10 (2 processes x 5 threads, event MPM)"
    assert summary["Error Log"] == "%s/logs/error_log (warn)" % root
    assert summary["Access Log"] == "%s/logs/access_log" % root
    assert summary["Server Backlog"] == "500 (connections)"
    assert "Request Timeout" not in summary
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
