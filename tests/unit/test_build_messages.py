"""The CMake build stops with one sentence naming what to install."""

import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmake():
    exe = shutil.which("cmake", path=os.path.join(sys.prefix, "bin")) or shutil.which("cmake")
    if not exe:
        pytest.skip("cmake is not installed (pip install cmake)")
    return exe


def _configure(tmp_path, *defines):
    proc = subprocess.run(
        [_cmake(), "-S", ROOT, "-B", str(tmp_path / "build"),
         f"-DPython_EXECUTABLE={sys.executable}", *defines],
        capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_build_configures_with_system_headers(tmp_path):
    code, out = _configure(tmp_path)
    assert code == 0, out
    assert "httpd headers:" in out


def test_build_missing_httpd_headers_names_package(tmp_path):
    code, out = _configure(tmp_path, f"-DHTTPD_INCLUDE_DIR={tmp_path}/none")
    assert code != 0
    text = " ".join(out.split())
    assert "Apache httpd headers (httpd.h) were not found: install apache2-dev (Debian/Ubuntu) or httpd-devel (RHEL/Fedora)" in text


def test_build_missing_apr_headers_names_package(tmp_path):
    code, out = _configure(tmp_path, f"-DAPR_INCLUDE_DIR={tmp_path}/none")
    assert code != 0
    text = " ".join(out.split())
    assert "APR headers (apr.h) were not found: install apache2-dev (Debian/Ubuntu)" in text


def test_build_static_python_is_refused_with_advice(tmp_path):
    # A Python that reports no shared libpython, as a static build would.
    fake = tmp_path / "python3"
    fake.write_text(
        "#!" + sys.executable + "\n"
        "import os, sys\n"
        "args = sys.argv[1:]\n"
        "if len(args) == 2 and args[0] == '-c' and 'Py_ENABLE_SHARED' in args[1]:\n"
        "    print(0)\n"
        "    sys.exit(0)\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}] + args)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = subprocess.run(
        [_cmake(), "-S", ROOT, "-B", str(tmp_path / "build"), f"-DPython_EXECUTABLE={fake}"],
        capture_output=True, text=True, timeout=120)
    text = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "was built without a shared libpython" in text
    assert "--enable-shared" in text


def _copy_headers(src_name, dest):
    """A copy of the system's headers holding `src_name` (httpd.h, apr.h)
    in `dest`, found as the build would find them; skips without them."""
    for src in ("/usr/include/apache2", "/usr/include/httpd",
                "/usr/include/apr-1.0", "/usr/include/apr-1"):
        if os.path.exists(os.path.join(src, src_name)):
            shutil.copytree(src, dest)
            return str(dest)
    pytest.skip("no system %s to copy (install apache2-dev)" % src_name)


def _mod_tether_flags(tmp_path):
    with open(tmp_path / "build" / "CMakeFiles" / "mod_tether.dir"
              / "flags.make") as f:
        return f.read()


def test_build_httpd_include_dir_override_is_used(tmp_path):
    headers = _copy_headers("httpd.h", tmp_path / "httpd-headers")
    code, out = _configure(tmp_path, f"-DHTTPD_INCLUDE_DIR={headers}")
    assert code == 0, out
    assert f"httpd headers: {headers}\n" in out
    assert f"-I{headers} " in _mod_tether_flags(tmp_path)


def test_build_httpd_include_dir_from_the_environment_is_used(tmp_path):
    headers = _copy_headers("httpd.h", tmp_path / "httpd-headers")
    env = dict(os.environ, HTTPD_INCLUDE_DIR=headers)
    proc = subprocess.run(
        [_cmake(), "-S", ROOT, "-B", str(tmp_path / "build"),
         f"-DPython_EXECUTABLE={sys.executable}"],
        capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # find_path() gives the hinted directory with a trailing slash.
    assert re.search(rf"httpd headers: {re.escape(headers)}/?\n", out), out
    assert re.search(rf"-I{re.escape(headers)}/? ", _mod_tether_flags(tmp_path))


def test_build_apr_include_dir_override_is_used(tmp_path):
    headers = _copy_headers("apr.h", tmp_path / "apr-headers")
    code, out = _configure(tmp_path, f"-DAPR_INCLUDE_DIR={headers}")
    assert code == 0, out
    assert f"APR headers: {headers}\n" in out
    assert f"-I{headers} " in _mod_tether_flags(tmp_path)


def test_build_never_runs_apxs(tmp_path):
    # A tripwire apxs first on PATH: configuring must not run it.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "apxs-runs.log"
    for name in ("apxs", "apxs2"):
        script = bindir / name
        script.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\nexit 1\n')
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [_cmake(), "-S", ROOT, "-B", str(tmp_path / "build"),
         f"-DPython_EXECUTABLE={sys.executable}"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not log.exists(), log.read_text()
