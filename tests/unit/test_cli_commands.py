"""tether-express's subcommands run end to end through cli.main(), against
a fake Apache (a shell script) and a fake mod_tether.so; no Apache runs."""

import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

import tether
from tether import cli, express, supervise

DEBIAN_L = "Compiled in modules:\n  core.c\n  mod_so.c\n  mod_unixd.c\n" \
           "  mod_log_config.c\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Fake httpd (records its arguments if ever run), modules, module.

    The server root is in a short directory of its own (the daemon sockets
    go there; a Unix socket's path is short)."""
    ran = tmp_path / "httpd-ran"
    httpd = tmp_path / "sbin" / "apache2"
    httpd.parent.mkdir()
    httpd.write_text("#!/bin/sh\nif [ \"$1\" = -l ]; then cat <<'EOF'\n%sEOF\n"
                     "else echo \"$*\" >> '%s'; fi\n" % (DEBIAN_L, ran))
    httpd.chmod(0o755)
    modules = tmp_path / "modules"
    modules.mkdir()
    for name in ("mod_mpm_event.so", "mod_authz_core.so", "mod_mime.so"):
        (modules / name).write_bytes(b"")
    module = tmp_path / "pkg" / "mod_tether.so"
    module.parent.mkdir()
    module.write_bytes(b"\x7fELF fake module")
    monkeypatch.setattr(tether, "module_location", lambda: str(module))
    app = tmp_path / "app.wsgi"
    app.write_text("def application(e, s):\n    return []\n")
    short = tempfile.mkdtemp(prefix="tx-", dir="/tmp")
    yield {"httpd": httpd, "modules": modules, "module": module,
           "ran": ran, "app": app, "root": pathlib.Path(short) / "server",
           "tmp": tmp_path}
    shutil.rmtree(short)


def server_argv(fake, command="setup-server", *extra):
    return [command, str(fake["app"]), "--server-root", str(fake["root"]),
            "--httpd-executable", str(fake["httpd"]),
            "--modules-directory", str(fake["modules"]),
            "--working-directory", str(fake["tmp"])] + list(extra)


def test_cli_module_location(fake, capsys):
    assert cli.main(["module-location"]) == 0
    assert capsys.readouterr().out == "%s\n" % fake["module"]


def test_cli_module_commands_fail_clearly_without_the_module(
        fake, monkeypatch, capsys):
    monkeypatch.setattr(tether, "module_location",
                        lambda: str(fake["tmp"] / "nowhere.so"))
    for command in ("module-location", "module-config", "install-module"):
        assert cli.main([command]) == 1
        err = capsys.readouterr().err
        assert err.startswith("tether-express: error: mod_tether.so is not at")
        assert "Traceback" not in err


@pytest.mark.parametrize("venv", [True, False])
def test_cli_module_config(fake, monkeypatch, capsys, venv):
    monkeypatch.setattr(express, "needs_python_home", lambda: venv)
    assert cli.main(["module-config"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'LoadModule tether_module "%s"' % fake["module"]
    if venv:
        assert out[1:] == ['WSGIPythonHome "%s"' % sys.prefix]
    else:
        assert out[1:] == []


def test_cli_install_module_copies_and_prints_config(fake, monkeypatch,
                                                     capsys):
    monkeypatch.setattr(express, "needs_python_home", lambda: True)
    target_dir = fake["tmp"] / "apache-modules"
    target_dir.mkdir()
    assert cli.main(["install-module", "--modules-directory",
                     str(target_dir)]) == 0
    name = "mod_tether-py%d%d.so" % sys.version_info[:2]
    installed = target_dir / name
    assert installed.read_bytes() == fake["module"].read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    assert capsys.readouterr().out.splitlines() == [
        'LoadModule tether_module "%s"' % installed,
        'WSGIPythonHome "%s"' % sys.prefix]
    assert [p.name for p in target_dir.iterdir()] == [name]


def test_cli_install_module_into_a_read_only_directory(fake, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    target_dir = fake["tmp"] / "ro"
    target_dir.mkdir(mode=0o555)
    assert cli.main(["install-module", "--modules-directory",
                     str(target_dir)]) == 1
    assert "cannot install" in capsys.readouterr().err


def test_cli_setup_server_writes_the_server_root(fake, capsys, monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    assert cli.main(server_argv(fake, "setup-server", "--port", "8123")) == 0
    out = capsys.readouterr().out
    root = fake["root"]
    assert "Server URL       : http://localhost:8123/\n" in out
    assert "Server Root      : %s\n" % root in out
    assert "Operating Mode   : daemon\n" in out
    assert "Request Capacity : 5 (1 process x 5 threads)\n" in out
    assert "Request Timeout  : 60 (seconds)\n" in out
    assert "Daemon Sockets   : %s/wsgi.*\n" % root in out
    assert "Start it with: %s start" % (root / "apachectl") in out
    conf = (root / "httpd.conf").read_text()
    assert 'LoadModule tether_module "%s"' % fake["module"] in conf
    assert 'LoadModule mpm_event_module "%s/mod_mpm_event.so"' % \
        fake["modules"] in conf
    assert 'WSGIScriptAlias / "%s" process-group="localhost:8123"' \
        % fake["app"] in conf
    assert 'WSGIDaemonProcess "localhost:8123"' in conf
    assert os.access(root / "apachectl", os.X_OK)
    assert (root / "logs").is_dir()
    assert not fake["ran"].exists()      # setup never starts Apache


def test_cli_start_server_setup_only_does_not_start_apache(fake, capsys,
                                                           monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    assert cli.main(server_argv(fake, "start-server", "--setup-only")) == 0
    assert (fake["root"] / "httpd.conf").is_file()
    assert not fake["ran"].exists()


def test_cli_start_server_runs_httpd_in_the_foreground(fake, capsys,
                                                       monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    assert cli.main(server_argv(fake, "start-server")) == 0
    assert fake["ran"].read_text() == "-f %s -DFOREGROUND\n" % (
        fake["root"] / "httpd.conf")
    out = capsys.readouterr().out
    assert "Request Capacity : 5 (1 process x 5 threads)\n" in out
    assert "Server Capacity  : 20 (event MPM: up to 2 processes x 10 " \
        "threads)\n" in out


def test_cli_start_server_embedded_mode(fake, capsys, monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    assert cli.main(server_argv(fake, "start-server", "--embedded-mode")) == 0
    out = capsys.readouterr().out
    assert "Operating Mode   : embedded\n" in out
    assert "Request Capacity : 5 (1 process x 5 threads, event MPM)" in out
    conf = (fake["root"] / "httpd.conf").read_text()
    assert "WSGIDaemonProcess" not in conf
    assert 'WSGIScriptAlias / "%s"\n' % fake["app"] in conf


def test_cli_start_server_process_name_runs_httpd_under_that_name(
        fake, capsys, monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    ran = []
    monkeypatch.setattr(supervise, "run",
                        lambda command, cwd=None: ran.append(command) or 0)
    assert cli.main(server_argv(fake, "start-server", "--process-name",
                                "my-site")) == 0
    conf = str(fake["root"] / "httpd.conf")
    assert ran == [cli.named_command(
        [str(fake["httpd"]), "-f", conf, "-DFOREGROUND"], "my-site")]
    assert "Process Name     : my-site\n" in capsys.readouterr().out
    # The command execs the program (same process) with argv[0] replaced.
    done = subprocess.run(cli.named_command(
        ["/bin/cat", "/proc/self/cmdline"], "my-site"),
        capture_output=True, check=True)
    assert done.stdout == b"my-site\0/proc/self/cmdline\0"


def test_cli_unreadable_working_directory_moves_the_daemons_home(
        fake, capsys, monkeypatch):
    def find_unreadable(account, needs):
        if any(n.what == "the working directory" for n in needs):
            return "the working directory X is mode 0700"
        return None
    monkeypatch.setattr(cli, "find_unreadable", find_unreadable)
    argv = server_argv(fake, "setup-server")
    i = argv.index("--working-directory")
    del argv[i:i + 2]
    monkeypatch.chdir(fake["tmp"])
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: the working directory X is mode 0700; the daemon " \
        "processes start in %s instead: pass --working-directory" \
        % fake["root"] in err
    conf = (fake["root"] / "httpd.conf").read_text()
    assert 'home="%s"' % fake["root"] in conf
    # Embedded mode only warns.
    assert cli.main(argv + ["--embedded-mode"]) == 0
    err = capsys.readouterr().err
    assert "the working directory X is mode 0700; pass --working-" \
        "directory" in err


def test_cli_unwritable_socket_directory_stops_start_server(
        fake, capsys, monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    sockets = fake["root"].parent / "sockets"
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False if str(
        path) == str(sockets) else real_access(path, mode))
    assert cli.main(server_argv(fake, "start-server", "--socket-prefix",
                                str(sockets))) == 1
    err = capsys.readouterr().err
    assert err.startswith("tether-express: error: the daemon socket "
                          "directory %s is not writable" % sockets)
    assert "--socket-prefix" in err
    assert not fake["ran"].exists()
    assert sockets.is_dir()           # made by setup, like the server root


def test_cli_start_server_reports_apache_failure_with_the_log(fake, capsys,
                                                              monkeypatch):
    monkeypatch.setattr(cli, "find_unreadable", lambda account, needs: None)
    monkeypatch.setattr(supervise, "run", lambda command, cwd=None: 1)
    root = fake["root"]
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "error_log").write_text(
        "".join("line %d\n" % i for i in range(30)) +
        "AH00072: make_sock: could not bind to address\n")
    assert cli.main(server_argv(fake, "start-server")) == 1
    err = capsys.readouterr().err
    assert "tether-express: Apache exited with status 1" in err
    assert "could not bind to address" in err
    assert "line 10\n" not in err and "line 11\n" in err    # last 20 lines


def test_cli_missing_apache_is_one_clear_error(fake, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(fake["tmp"]))
    monkeypatch.setattr("tether.apache.HTTPD_DIRS", ())
    monkeypatch.setattr("tether.apache.OS_RELEASE",
                        str(fake["tmp"] / "no-os-release"))
    argv = server_argv(fake, "setup-server")
    i = argv.index("--httpd-executable")
    del argv[i:i + 2]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tether-express: error: Apache httpd (apache2 or "
                          "httpd) was not found")
    assert "apache2 package on Debian/Ubuntu" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_bad_option_value_is_an_error_not_a_traceback(fake, capsys):
    assert cli.main(server_argv(fake, "setup-server", "--threads", "0")) == 1
    err = capsys.readouterr().err
    assert err == "tether-express: error: --threads must be at least 1, " \
                  "not 0\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: Apache's "
                    "children then run as another account")
def test_cli_as_root_start_server_stops_before_apache_on_unreadable_paths(
        fake, capsys):
    # pytest's tmp_path is under /tmp/pytest-of-root, mode 0700: the web
    # user cannot reach the application there.
    assert cli.main(server_argv(fake, "start-server")) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and "pytest-of-root" in err
    assert re.search(r"is mode 0700 \(owner root\), so \S+ cannot reach", err)
    assert not fake["ran"].exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_cli_as_root_setup_server_only_warns_and_names_the_web_user(
        fake, capsys):
    assert cli.main(server_argv(fake, "setup-server")) == 0
    captured = capsys.readouterr()
    assert "tether-express: warning: " in captured.err
    assert "cannot reach" in captured.err
    assert "(started as root without --user, so Apache's children run as " \
        in captured.out
    conf = (fake["root"] / "httpd.conf").read_text()
    assert "\nUser " in conf and "\nUser root" not in conf
