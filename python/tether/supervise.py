"""Run Apache in the foreground under a thin Python parent.

Apache's parent process reads SIGHUP as "restart now" (killing requests in
flight) and SIGUSR1 as "restart gracefully".  Process supervisors and
people alike send SIGHUP to mean "reload", so tether-express does not exec
Apache: it starts `httpd -DFOREGROUND` as its child, in a process group of
its own, and forwards signals to it:

    SIGTERM, SIGINT (Ctrl-C)  -> SIGTERM   stop
    SIGHUP, SIGUSR1           -> SIGUSR1   graceful restart
    SIGWINCH                  -> SIGWINCH  graceful stop
    SIGUSR2                   -> SIGHUP    immediate restart

It then exits with Apache's exit status (128 + N if a signal N killed it).
Apache runs in its own process group so that Ctrl-C reaches only this
parent, which stops Apache once, in order, instead of every child of Apache
receiving SIGINT at the same moment.  On Linux, Apache also gets SIGTERM if
this parent dies without forwarding (parent-death signal).
"""

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

FORWARD = {
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGINT: signal.SIGTERM,
    signal.SIGHUP: signal.SIGUSR1,
    signal.SIGUSR1: signal.SIGUSR1,
    signal.SIGWINCH: signal.SIGWINCH,
    signal.SIGUSR2: signal.SIGHUP,
}

_PR_SET_PDEATHSIG = 1


def _parent_death_signal():
    """A function the child runs to get SIGTERM when its parent dies, or
    None where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                           use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def foreground_command(httpd, conf):
    """The command line that runs Apache in the foreground."""
    return [httpd, "-f", conf, "-DFOREGROUND"]


def exit_status(returncode):
    """A shell-style exit status for a Popen returncode."""
    return 128 - returncode if returncode < 0 else returncode


def run(command, cwd=None, forward=FORWARD, on_start=None):
    """Run `command` (Apache in the foreground) and forward signals to it.

    Returns its exit status.  `on_start(pid)` is called once it runs.
    """
    parent_pid = os.getpid()
    death_signal = _parent_death_signal()
    handled = list(forward)

    def in_child():
        os.setpgid(0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
        if death_signal is not None:
            death_signal()
            if os.getppid() != parent_pid:   # the parent died already
                os.kill(os.getpid(), signal.SIGTERM)

    # Hold the signals until the handlers can name Apache's pid.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    previous = {}
    try:
        proc = subprocess.Popen(command, cwd=cwd, preexec_fn=in_child)

        def relay(signum, frame):
            try:
                proc.send_signal(forward[signum])
            except ProcessLookupError:
                pass

        for signum in handled:
            previous[signum] = signal.signal(signum, relay)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    try:
        if on_start is not None:
            on_start(proc.pid)
        while True:
            try:
                return exit_status(proc.wait())
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
