"""When Apache is missing, the integration tests skip locally but fail in a
CI run (CI=true), so that CI cannot go green by skipping them
(tests/integration/harness.py missing_prerequisite, used by conftest.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))

import harness  # noqa: E402

REASON = "no Apache httpd binary (looked for apache2 and httpd)"


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"},
                                     {"CI": "0"}, {"CI": "no"},
                                     {"PATH": "/usr/bin"}])
def test_missing_apache_skips_outside_ci(environ):
    action, message = harness.missing_prerequisite(REASON, environ)
    assert action == "skip"
    assert message == "integration tests need Apache httpd 2.4: " + REASON


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes",
                                   " true\n"])
def test_missing_apache_fails_on_ci(value):
    action, message = harness.missing_prerequisite(REASON, {"CI": value})
    assert action == "fail"
    assert message.startswith("integration tests need Apache httpd 2.4: "
                              + REASON)
    assert "CI=" in message and "must not skip" in message


def test_on_ci_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert harness.on_ci()
    assert harness.missing_prerequisite(REASON)[0] == "fail"
    monkeypatch.delenv("CI")
    assert not harness.on_ci()
    assert harness.missing_prerequisite(REASON)[0] == "skip"


def _run_pytest(tmp_path, ci):
    """Runs one integration test in a subprocess with no Apache to find
    (TETHER_TEST_HTTPD pointing at nothing): its outcome line."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TETHER_TEST_HTTPD"] = str(tmp_path / "no-such-httpd")
    if ci is not None:
        env["CI"] = ci
    test = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "integration",
        "test_harness_discovery.py::test_harness_finds_apache_modules_"
        "without_apxs")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-rfs", test], capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=300, check=False)


def test_conftest_skips_without_apache_locally(tmp_path):
    result = _run_pytest(tmp_path, None)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 skipped" in out, out
    assert "integration tests need Apache httpd 2.4: TETHER_TEST_HTTPD=" \
        in out, out


def test_conftest_fails_without_apache_on_ci(tmp_path):
    result = _run_pytest(tmp_path, "true")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 error" in out or "1 failed" in out, out
    assert "must not skip the integration tests" in out, out
