"""start-server's thin parent: signals sent to tether-express reach the
foreground httpd as Apache expects them (SIGHUP becomes a graceful
SIGUSR1).  A small Python program stands in for httpd."""

import os
import signal
import sys
import time

import pytest

from tether import supervise

# Records each signal it gets; exits 0 on SIGTERM, like httpd -DFOREGROUND.
FAKE_HTTPD = r"""
import os, signal, sys, time
log = sys.argv[1]
def record(name):
    with open(log, "a") as f:
        f.write(name + "\n")
def on_signal(signum, frame):
    record(signal.Signals(signum).name)
    if signum == signal.SIGTERM:
        sys.exit(0)
for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGWINCH,
          signal.SIGINT):
    signal.signal(s, on_signal)
record("ready pgid=%d pid=%d" % (os.getpgid(0), os.getpid()))
while True:
    time.sleep(0.05)
"""


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def run_with_signals(tmp_path, signals):
    """Run the fake httpd under supervise.run and send this process each
    of `signals` in turn, waiting until the child logged each one."""
    log = str(tmp_path / "signals.log")
    script = tmp_path / "fake_httpd.py"
    script.write_text(FAKE_HTTPD)
    seen = {}

    def on_start(pid):
        seen["pid"] = pid
        assert wait_for(lambda: len(lines(log)) == 1), "fake httpd not ready"
        for count, signum in enumerate(signals, start=2):
            os.kill(os.getpid(), signum)
            if signum in (signal.SIGTERM, signal.SIGINT):
                break
            assert wait_for(lambda: len(lines(log)) >= count), signum

    status = supervise.run([sys.executable, str(script), log],
                           on_start=on_start)
    return status, lines(log), seen["pid"]


def test_supervise_sighup_is_a_graceful_restart_and_sigterm_stops(tmp_path):
    before = signal.getsignal(signal.SIGHUP)
    status, log, pid = run_with_signals(
        tmp_path, [signal.SIGHUP, signal.SIGUSR1, signal.SIGWINCH,
                   signal.SIGTERM])
    assert status == 0
    assert log[1:] == ["SIGUSR1", "SIGUSR1", "SIGWINCH", "SIGTERM"]
    # The child ran in a process group of its own.
    assert log[0] == "ready pgid=%d pid=%d" % (pid, pid)
    # Our handlers are gone again.
    assert signal.getsignal(signal.SIGHUP) == before


def test_supervise_ctrl_c_becomes_sigterm(tmp_path):
    status, log, _ = run_with_signals(tmp_path, [signal.SIGINT])
    assert status == 0
    assert log[1:] == ["SIGTERM"]


def test_supervise_returns_the_child_exit_status(tmp_path):
    assert supervise.run([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert supervise.run(
        [sys.executable, "-c",
         "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]) == \
        128 + signal.SIGKILL


def test_supervise_foreground_command():
    assert supervise.foreground_command("/usr/sbin/apache2", "/r/httpd.conf") \
        == ["/usr/sbin/apache2", "-f", "/r/httpd.conf", "-DFOREGROUND"]


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the parent-death signal is Linux's prctl")
def test_supervise_child_is_stopped_if_the_parent_dies(tmp_path):
    log = str(tmp_path / "signals.log")
    script = tmp_path / "fake_httpd.py"
    script.write_text(FAKE_HTTPD)
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import os, sys, time\nsys.path[:0] = %r\n"
        "from tether import supervise\n"
        "def die(pid):\n"
        "    while not os.path.exists(%r):\n"
        "        time.sleep(0.02)\n"
        "    os._exit(0)\n"
        "supervise.run([sys.executable, %r, %r], on_start=die)\n"
        % (sys.path, log, str(script), log))
    os.spawnv(os.P_WAIT, sys.executable, [sys.executable, str(parent)])
    try:
        assert wait_for(lambda: "SIGTERM" in lines(log)), lines(log)
    finally:
        ready = lines(log)[:1]
        if ready:
            pid = int(ready[0].rsplit("=", 1)[1])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
