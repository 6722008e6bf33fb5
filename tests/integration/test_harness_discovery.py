"""Apache is found without apxs, by the harness and by tether-express.

Issue #2 asks for no apxs call anywhere: a tripwire `apxs` and `apxs2` put
first on PATH record any run of them, and the discovery must still find
the same Apache.
"""

import os

import pytest

import harness

TRIPWIRE = """#!/bin/sh
echo "$0 $*" >> {log}
echo /nonexistent-apxs-libexecdir
"""


@pytest.fixture
def apxs_tripwire(tmp_path, monkeypatch):
    """A PATH whose apxs and apxs2 log their runs; returns the log path."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "apxs-runs.log"
    for name in ("apxs", "apxs2"):
        script = bindir / name
        script.write_text(TRIPWIRE.format(log=log))
        script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    monkeypatch.delenv("TETHER_TEST_HTTPD_MODULES", raising=False)
    return log


def test_harness_finds_apache_modules_without_apxs(httpd_env, apxs_tripwire):
    install = harness.find_apache()
    assert not isinstance(install, str), install
    assert not apxs_tripwire.exists(), apxs_tripwire.read_text()
    assert os.path.exists(os.path.join(install.modules_dir,
                                       "mod_authz_core.so"))


def test_express_discovers_apache_without_apxs(httpd_env, apxs_tripwire):
    from tether.apache import Apache

    apache = Apache.discover()
    assert not apxs_tripwire.exists(), apxs_tripwire.read_text()
    assert os.path.realpath(apache.modules_dir) == os.path.realpath(
        harness.find_modules_dir())
    assert os.access(apache.httpd, os.X_OK)
