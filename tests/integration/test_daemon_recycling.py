"""Daemon mode, the life of a daemon process: a process that recycles itself
gives up its slot within shutdown-timeout even when Python's exit functions
hang; inactivity-timeout recycles an idle process and leaves busy ones
alone; failures name the group, socket and pid; and Python sees the locale
that lang=, locale= or Apache's environment give it."""

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import harness

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self"),
    reason="the daemon process tests read /proc (Linux)")

D = "@APPS@/daemon"


def _pid_of(server, path):
    """The pid a 200 response of `path` names, else None."""
    resp = server.get(path)
    return int(resp.body) if resp.status == 200 else None


def _new_pid(server, path, old, deadline):
    """Waits until `path` is served by a process other than `old`."""
    return harness.wait_for(
        lambda: (lambda pid: pid if pid and pid != old else None)(
            _pid_of(server, path)),
        deadline=deadline, what="a new daemon process serving %s" % path)


# --- shutdown-timeout after a self-recycle --------------------------------------

GRACEFUL, SHUTDOWN = 2, 2

HANG_CONFIG = f"""
WSGIDaemonProcess hangmax processes=1 threads=2 display-name=%{{GROUP}} maximum-requests=1 graceful-timeout={GRACEFUL} shutdown-timeout={SHUTDOWN}
WSGIDaemonProcess hangusr processes=1 threads=2 display-name=%{{GROUP}} graceful-timeout={GRACEFUL} shutdown-timeout={SHUTDOWN}
WSGIScriptAlias /hangmax {D}/hang_at_exit.wsgi process-group=hangmax application-group=%{{GLOBAL}}
WSGIScriptAlias /hangusr {D}/hang_at_exit.wsgi process-group=hangusr application-group=%{{GLOBAL}}
"""

# Start-up of a replacement (fork, Python, the app) and the parent's reaping,
# on a loaded two-core machine.
MARGIN = 8


class TestShutdownTimeout:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(HANG_CONFIG, name="daemon-hang") as srv:
            yield srv

    def _assert_killed(self, server, group, pid, reason, mark, started):
        server.wait_for_log(
            r"TETHER0606: daemon process %d of group '%s' exits \(%s"
            % (pid, group, reason), since=mark)
        server.wait_for_log(
            r"TETHER0608: daemon process %d of group '%s' \(socket \S+\.sock\) "
            r"did not finish exiting within shutdown-timeout=%ds after it "
            r"stopped serving \(%s\): Python's exit functions are still "
            r"running; killing it" % (pid, group, SHUTDOWN, reason),
            since=mark, deadline=GRACEFUL + SHUTDOWN + MARGIN)
        # The parent saw it die of the SIGKILL and replaced it at once.
        server.wait_for_log(
            r"TETHER0555: Daemon process 0 of group '%s' \(pid %d\) died .*"
            r"signal 9 .*restarting it$" % (group, pid), since=mark)
        replacement = _new_pid(server, "/" + group, pid,
                               deadline=GRACEFUL + SHUTDOWN + MARGIN
                               - (time.monotonic() - started))
        assert not harness.pid_alive(pid)
        return replacement

    def test_daemon_maximum_requests_hung_atexit_killed_after_shutdown_timeout(
            self, server):
        mark = server.log_mark()
        first = _pid_of(server, "/hangmax")
        started = time.monotonic()
        assert first
        # That one request reached maximum-requests=1: the process stops
        # serving, its atexit function hangs, and only shutdown-timeout
        # gets the slot back.
        self._assert_killed(server, "hangmax", first,
                            "maximum-requests reached", mark, started)

    def test_daemon_sigusr1_hung_atexit_killed_after_shutdown_timeout(
            self, server):
        first = harness.wait_for(lambda: _pid_of(server, "/hangusr"),
                                 what="group hangusr")
        mark = server.log_mark()
        os.kill(first, signal.SIGUSR1)
        started = time.monotonic()
        self._assert_killed(server, "hangusr", first,
                            "graceful stop requested", mark, started)
        # The replacement serves like the first one did.
        assert _pid_of(server, "/hangusr") not in (None, first)


# --- inactivity-timeout --------------------------------------------------------

INACTIVITY = 2

IDLE_CONFIG = f"""
WSGIDaemonProcess idler processes=1 threads=2 display-name=%{{GROUP}} inactivity-timeout={INACTIVITY}
WSGIScriptAlias /idler {D}/activity.wsgi process-group=idler application-group=%{{GLOBAL}}
WSGIScriptAlias /ignored {D}/activity.wsgi process-group=idler application-group=%{{GLOBAL}}
<Location /ignored>
    WSGIIgnoreActivity On
</Location>
"""


class TestInactivityTimeout:
    """mod_wsgi 4.x and later (its WSGIDaemonProcess documentation and its
    monitor thread): a process is idle when it has no active request and
    none arrived for inactivity-timeout seconds.  A request that is active,
    with or without input and output, is never cut off by it; that is
    request-timeout's job."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(IDLE_CONFIG, name="daemon-idle") as srv:
            yield srv

    def _exit_line(self, pid):
        return (r"TETHER0606: daemon process %d of group 'idler' exits "
                r"\(inactivity-timeout reached" % pid)

    def test_daemon_inactivity_timeout_recycles_idle_process(self, server):
        mark = server.log_mark()
        first = harness.wait_for(lambda: _pid_of(server, "/idler/pid"),
                                 what="group idler")
        server.wait_for_log(self._exit_line(first), since=mark)
        assert _new_pid(server, "/idler/pid", first,
                        deadline=harness.WAIT_DEADLINE) != first

    def _poll(self, server, path, seconds):
        """Requests `path` every 0.3 s for `seconds`: the pids that served
        it, in order."""
        pids = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pid = _pid_of(server, path)
            if pid and (not pids or pids[-1] != pid):
                pids.append(pid)
            time.sleep(0.3)
        return pids

    def test_daemon_steady_requests_keep_the_process(self, server):
        first = harness.wait_for(lambda: _pid_of(server, "/idler/pid"),
                                 what="group idler")
        mark = server.log_mark()
        assert self._poll(server, "/idler/pid", 2 * INACTIVITY + 1) == [first]
        assert not re.search(self._exit_line(first), server.error_log(mark))

    def test_daemon_ignore_activity_requests_do_not_keep_the_process(
            self, server):
        # WSGIIgnoreActivity On (mod_wsgi's health-check case): the same
        # steady requests leave the process to recycle when it is idle
        # between them.
        first = harness.wait_for(lambda: _pid_of(server, "/ignored/pid"),
                                 what="group idler")
        mark = server.log_mark()
        # Recycled while the requests kept coming: another pid answers
        # before the polling ends.
        pids = self._poll(server, "/ignored/pid", 3 * INACTIVITY + 2)
        assert pids[0] == first
        assert len(pids) > 1, pids
        server.wait_for_log(self._exit_line(first), since=mark)

    def test_daemon_inactivity_timeout_spares_silent_request(self, server):
        mark = server.log_mark()
        # Twice the timeout without reading input or writing output.
        resp = server.get("/idler/silent?%d" % (2 * INACTIVITY + 1))
        assert resp.status == 200
        pid = int(resp.body)
        assert not re.search(self._exit_line(pid), server.error_log(mark))
        # Once it is done, the now idle process recycles.
        server.wait_for_log(self._exit_line(pid), since=mark)

    def test_daemon_inactivity_timeout_spares_streaming_request(self, server):
        mark = server.log_mark()
        resp = server.raw_request("GET", "/idler/stream?%d"
                                  % (2 * INACTIVITY + 1))
        assert resp.status == 200
        body, complete = harness.decode_chunked(resp.body)
        assert complete
        ticks, pid = body.rsplit(b"\n", 1)
        assert ticks.count(b"tick") >= 4 * (2 * INACTIVITY)
        assert not re.search(self._exit_line(int(pid)),
                             server.error_log(mark))


# --- failure messages name the group, socket and pid --------------------------------

FAIL_CONFIG = f"""
WSGIDaemonProcess dying processes=1 threads=2 display-name=%{{GROUP}}
WSGIDaemonProcess nosock processes=1 threads=2 display-name=%{{GROUP}} connect-timeout=1
WSGIDaemonProcess queued processes=1 threads=1 display-name=%{{GROUP}} queue-timeout=1 socket-timeout=30
WSGIScriptAlias /dying {D}/behaviours.wsgi process-group=dying application-group=%{{GLOBAL}}
WSGIScriptAlias /nosock {D}/behaviours.wsgi process-group=nosock application-group=%{{GLOBAL}}
WSGIDaemonProcess small processes=1 threads=2 display-name=%{{GROUP}} header-buffer-size=8192
WSGIScriptAlias /queued {D}/behaviours.wsgi process-group=queued application-group=%{{GLOBAL}}
WSGIScriptAlias /small {D}/behaviours.wsgi process-group=small application-group=%{{GLOBAL}}
"""


class TestFailureMessages:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(FAIL_CONFIG, name="daemon-failmsg") as srv:
            yield srv

    def _socket_of(self, server, group):
        line = server.wait_for_log(
            r"TETHER0553: Started daemon process 0 of group '%s' \(pid \d+, "
            r"socket (\S+)\)" % group)
        return line.group(1)

    def test_daemon_died_mid_body_logs_group_socket_pid(self, server):
        pid = harness.wait_for(lambda: _pid_of(server, "/dying/pid"),
                               what="group dying")
        sock = self._socket_of(server, "dying")
        mark = server.log_mark()
        resp = server.raw_request("GET", "/dying/die-mid-body")
        assert resp.status == 200
        body, complete = harness.decode_chunked(resp.body)
        assert body.startswith(b"first chunk") and not complete
        server.wait_for_log(
            r"TETHER0507: daemon group 'dying' \(socket %s, pid %d\) failed "
            r"in the middle of the response: the daemon process was killed "
            r"by signal 9" % (re.escape(sock), pid), since=mark)

    def test_daemon_cannot_connect_within_connect_timeout_is_503(self, server):
        # No request has gone to the group yet, so no Apache child holds a
        # connection to it: with its socket file gone, every connect()
        # fails (ENOENT) until connect-timeout, unlike a full backlog.
        sock = self._socket_of(server, "nosock")
        os.unlink(sock)
        mark = server.log_mark()
        assert server.get("/nosock/pid").status == 503
        server.wait_for_log(
            r"TETHER0511: Unable to connect to daemon group 'nosock' on "
            r"socket %s within connect-timeout \(No such file or directory\)"
            % re.escape(sock), since=mark)

    def test_daemon_header_over_buffer_size_names_group_socket_and_pid(
            self, server):
        sock = self._socket_of(server, "small")
        mark = server.log_mark()
        assert server.get("/small/big-header").status == 502
        server.wait_for_log(
            r"TETHER0502: Response headers of \d+ bytes from daemon group "
            r"'small' \(socket %s, pid [1-9]\d*\) exceed "
            r"header-buffer-size=8192" % re.escape(sock), since=mark)

    def test_daemon_queue_timeout_is_logged_on_both_sides(self, server):
        pid = harness.wait_for(lambda: _pid_of(server, "/queued/pid"),
                               what="group queued")
        sock = self._socket_of(server, "queued")
        mark = server.log_mark()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            busy = pool.submit(server.get, "/queued/sleep?3")
            time.sleep(0.3)
            waited = server.get("/queued/pid")
            assert busy.result(timeout=30).status == 200
        assert waited.status == 504
        why = (r"queue-timeout expired: the request waited more than "
               r"queue-timeout=1s before daemon process %d \(socket %s\) "
               r"could take it; answered 504" % (pid, re.escape(sock)))
        # The daemon's line...
        server.wait_for_log(r"TETHER0602: Queue timeout expired for WSGI "
                            r"daemon group 'queued': " + why, since=mark)
        # ...and the Apache child's, with the client's request.
        server.wait_for_log(r"TETHER0506: daemon group 'queued': " + why,
                            since=mark)


# --- the locale Python sees ------------------------------------------------------

LATIN1 = "en_US.ISO-8859-1"
NAME = "h\u00e9llo.txt"


@contextlib.contextmanager
def _apache_environment(**values):
    """Apache (and so its children and daemons) starts with these locale
    variables and no others."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("LC_") or key in ("LANG", "LANGUAGE",
                                                "LOCPATH"):
                mp.delenv(key)
        for key, value in values.items():
            mp.setenv(key, value)
        yield


def _report(server, path):
    resp = server.get(path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def _assert_utf8(report):
    assert report["filesystem"] == "utf-8", report
    assert report["preferred"].lower().replace("-", "") == "utf8", report
    assert report["file"] == {"listed": [NAME],
                              "bytes": NAME.encode("utf-8").hex()}, report


DEFAULT_LOCALE_CONFIG = f"""
WSGIDaemonProcess plain processes=1 threads=2 display-name=%{{GROUP}}
WSGIScriptAlias /daemon {D}/locale_report.wsgi process-group=plain application-group=%{{GLOBAL}}
WSGIScriptAlias /embedded {D}/locale_report.wsgi application-group=%{{GLOBAL}}
"""


def test_locale_c_locale_gives_python_utf8_in_daemons_and_children(httpd_env):
    """Under the C locale that init systems give Apache (Debian's envvars
    say LANG=C), Python behaves as `LANG=C python3` does: the locale is
    coerced to UTF-8 (PEP 538, PEP 540), so UTF-8 file names work."""
    with _apache_environment(LANG="C"), \
            httpd_env.server(DEFAULT_LOCALE_CONFIG,
                             name="locale-default") as server:
        daemon = _report(server, "/daemon")
        assert daemon["process_group"] == "plain"
        _assert_utf8(daemon)
        embedded = _report(server, "/embedded")
        assert embedded["process_group"] == ""
        assert embedded["pid"] != daemon["pid"]
        _assert_utf8(embedded)


@pytest.fixture(scope="module")
def latin1_locale_dir():
    """A directory for LOCPATH holding an ISO-8859-1 locale, built with
    localedef: a locale whose encoding is not UTF-8 shows whether Python
    took the one lang=/locale= name."""
    if not shutil.which("localedef"):
        pytest.skip("localedef is not installed: no non-UTF-8 locale to "
                    "test lang= and locale= with")
    top = tempfile.mkdtemp(prefix="tether-locales-", dir="/tmp")
    os.chmod(top, 0o755)
    try:
        result = subprocess.run(
            ["localedef", "-i", "en_US", "-f", "ISO-8859-1",
             os.path.join(top, LATIN1)],
            capture_output=True, text=True, timeout=120, check=False)
        if not os.path.isdir(os.path.join(top, LATIN1)):
            pytest.skip("localedef could not build %s (exit %d): %s"
                        % (LATIN1, result.returncode, result.stderr[-500:]))
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


LANG_CONFIG = f"""
WSGIDaemonProcess bylang processes=1 threads=2 display-name=%{{GROUP}} lang={LATIN1}
WSGIDaemonProcess bylocale processes=1 threads=2 display-name=%{{GROUP}} locale={LATIN1}
WSGIScriptAlias /bylang {D}/locale_report.wsgi process-group=bylang application-group=%{{GLOBAL}}
WSGIScriptAlias /bylocale {D}/locale_report.wsgi process-group=bylocale application-group=%{{GLOBAL}}
"""


@pytest.fixture(scope="module")
def locale_server(httpd_env, latin1_locale_dir):
    with _apache_environment(LANG="C", LOCPATH=latin1_locale_dir), \
            httpd_env.server(LANG_CONFIG, name="locale-options") as server:
        yield server


def _assert_latin1(report):
    assert report["lc_ctype"] == LATIN1, report
    assert report["preferred"] == "ISO-8859-1", report
    assert report["filesystem"] == "iso8859-1", report
    assert report["utf8_mode"] == 0, report
    assert report["file"] == {"listed": [NAME],
                              "bytes": NAME.encode("latin-1").hex()}, report


def test_locale_lang_option_is_python_locale(locale_server):
    report = _report(locale_server, "/bylang")
    assert report["LANG"] == LATIN1
    assert report["LC_ALL"] is None
    _assert_latin1(report)


def test_locale_locale_option_is_python_locale(locale_server):
    report = _report(locale_server, "/bylocale")
    assert report["LC_ALL"] == LATIN1
    assert report["LANG"] == "C"
    _assert_latin1(report)
