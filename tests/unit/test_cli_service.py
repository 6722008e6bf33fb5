"""apache-conf/tether-express.service: the systemd unit example runs
tether-express start-server with options it accepts, and systemd accepts
the unit (systemd-analyze verify, where systemd is installed)."""

import configparser
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

from tether import cli

REPO = pathlib.Path(__file__).resolve().parents[2]
UNIT = REPO / "apache-conf" / "tether-express.service"
EXAMPLE_COMMAND = "/opt/tether/venv/bin/tether-express"


def unit():
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str        # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def exec_start():
    value = unit()["Service"]["ExecStart"]
    return shlex.split(value.replace("\\\n", " "))


def test_service_unit_runs_start_server_in_the_foreground():
    service = unit()["Service"]
    assert service["Type"] == "simple"
    argv = exec_start()
    assert argv[0] == EXAMPLE_COMMAND
    assert argv[1] == "start-server"
    # SIGHUP: tether-express turns it into Apache's graceful restart.
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_service_unit_options_are_accepted_by_start_server():
    args = cli.make_parser().parse_args(exec_start()[1:])
    assert args.command == "start-server"
    assert args.server_root == "/run/" + unit()["Service"][
        "RuntimeDirectory"]
    assert args.log_to_terminal        # into journald
    assert args.health_url == "/-/health"
    assert args.trust_proxy == ["127.0.0.1"]


def test_service_unit_names_the_installed_command():
    # The example's command is where .ci/bootstrap installs tether-express
    # as root; this venv's is the same entry point.
    here = os.path.join(os.path.dirname(sys.executable), "tether-express")
    if not os.access(here, os.X_OK):
        pytest.skip("tether-express is not installed beside %s"
                    % sys.executable)
    assert os.path.basename(EXAMPLE_COMMAND) == os.path.basename(here)


def test_service_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    here = os.path.join(os.path.dirname(sys.executable), "tether-express")
    if not os.access(here, os.X_OK):
        pytest.skip("tether-express is not installed beside %s"
                    % sys.executable)
    # verify checks that ExecStart's command exists: use this venv's.
    copy = tmp_path / "tether-express-test.service"
    copy.write_text(UNIT.read_text().replace(EXAMPLE_COMMAND, here))
    result = subprocess.run([analyze, "verify", str(copy)],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert str(copy) not in output, output      # no warning about the unit
