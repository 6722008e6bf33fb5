"""The CMake build stops with one sentence naming what to install."""

import os
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
