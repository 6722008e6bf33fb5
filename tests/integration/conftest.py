"""Fixtures for the integration tests: a real Apache httpd loading mod_tether.

A test module owns its server through a module-scoped fixture:

    CONFIG = '''
    WSGIScriptAlias /app @APPS@/environ_app.wsgi
    '''

    @pytest.fixture(scope="module")
    def server(httpd_env, mpm):          # drop `mpm` for event only
        with httpd_env.server(CONFIG, mpm=mpm, name="environ") as srv:
            yield srv

A module whose tests must also hold in daemon mode takes `server_variant`
instead of `mpm`: its tests run under event and prefork in embedded mode and
under event in daemon mode (every application sent to one daemon group, see
harness.DAEMON_GROUP):

    @pytest.fixture(scope="module")
    def server(httpd_env, server_variant):
        with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                              wsgi_mode=server_variant.wsgi_mode,
                              name="environ-" + server_variant.name) as srv:
            yield srv

A test known to fail in daemon mode only is marked
`@pytest.mark.xfail_daemon(reason="...")`: a strict xfail on its daemon
variants, nothing on the others.

A test class with an HTTPD_CONFIG attribute gets the module's `server`
restarted with that config before its first test (httpd's pyhttpd style);
`server.restart(new_config)` does the same by hand, `server.graceful()`
restarts gracefully, `server.configtest(config)` runs `httpd -t`, and
`server.error_log(since=server.log_mark())` / `server.wait_for_log(regex,
since=mark)` read the error log.  When a test fails, the error log of every
running server (from the test's start) is added to its report.

Without Apache the integration tests skip, saying why, except when CI=true
(or 1, yes): a CI run fails them instead, so that it cannot go green by
skipping (harness.missing_prerequisite).  A missing built module fails them
in both cases.

TETHER_TEST_MODULE=/path/to/mod_wsgi.so runs the suite against mod_wsgi (a
reference run; the `tether_only` fixture skips Tether-only tests),
TETHER_TEST_KEEP=1 keeps every server directory, TETHER_TEST_LOGLEVEL sets
the default LogLevel (e.g. "info tether:debug"), and TETHER_TEST_HTTPD /
TETHER_TEST_HTTPD_MODULES pick another Apache.  TETHER_TEST_SANITIZE=1
preloads the ASan and UBSan runtimes into every Apache (for a module built
with TETHER_SANITIZE=ON; see .ci/sanitize), and a sanitizer report fails the
test during which it appeared.
"""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


INTEGRATION_DIR = os.path.dirname(os.path.abspath(__file__))
_MARKS = pytest.StashKey()
_LOG_TAIL_LINES = 400


class HttpdEnv:
    """What every server of the session shares: Apache and the module."""

    def __init__(self, install, module):
        self.install = install
        self.module = module

    @property
    def reference(self):
        """True when the module under test is mod_wsgi (a reference run)."""
        return self.module.reference

    def has_mpm(self, mpm):
        return self.install.has_module("mpm_" + mpm)

    def server(self, config="", *, mpm="event", log_level=None,
               name="httpd", mpm_settings=None, wsgi_mode="embedded",
               daemon_processes=2, daemon_threads=10, env=None):
        """A new, not yet started server; use it as a context manager.

        `log_level` defaults to $TETHER_TEST_LOGLEVEL or "info";
        `mpm_settings` replaces the harness's <IfModule mpm_*> block;
        `wsgi_mode="daemon"` sends every application to a daemon group of
        `daemon_processes` processes of `daemon_threads` threads (by default
        as many as the event MPM's settings give embedded mode: several
        processes, several threads each); `env` adds variables to httpd's
        environment (which otherwise has no PYTHON* variable)."""
        if log_level is None:
            log_level = os.environ.get("TETHER_TEST_LOGLEVEL", "info")
        if not self.has_mpm(mpm):
            _missing("Apache at %s has no mpm_%s"
                     % (self.install.binary, mpm))
        return harness.ApacheServer(self.install, self.module, config=config,
                                    mpm=mpm, log_level=log_level, name=name,
                                    mpm_settings=mpm_settings,
                                    wsgi_mode=wsgi_mode,
                                    daemon_processes=daemon_processes,
                                    daemon_threads=daemon_threads, env=env)


def _check_apache_can_read(module):
    """As root, the children run as www-data: they must read the Python."""
    if not harness.running_as_root():
        return
    uid, gid, user, _ = harness.apache_identity()
    gids = set(os.getgrouplist(user, gid))
    bad = harness.unreadable_for(harness.python_paths_apache_reads(module.path),
                                 uid, gids)
    if bad:
        pytest.exit(
            "integration tests: the Apache children run as %s, who cannot "
            "read %s (needed for the Python at %s). Run the suite with "
            "`.ci/bootstrap test`, which makes a venv %s can read."
            % (user, bad, sys.prefix, user), returncode=4)


def _missing(reason):
    """Skips the test for lack of Apache, or fails it when CI=true
    (harness.missing_prerequisite)."""
    action, message = harness.missing_prerequisite(reason)
    if action == "fail":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def httpd_env():
    install = harness.find_apache()
    if isinstance(install, str):
        _missing(install)
    # A missing module fails the tests everywhere, CI or not.
    try:
        module = harness.find_module()
    except harness.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    _check_apache_can_read(module)
    if harness.sanitize_enabled() and not module.reference:
        try:
            harness.sanitizer_runtimes()
        except harness.HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
        with open(module.path, "rb") as f:
            if b"libasan.so" not in f.read():
                pytest.fail("TETHER_TEST_SANITIZE: %s is not built with "
                            "AddressSanitizer (build it with "
                            "TETHER_SANITIZE=ON; see .ci/sanitize)"
                            % module.path, pytrace=False)
    return HttpdEnv(install, module)


@pytest.fixture(scope="session")
def tether_only(httpd_env):
    """Skips a test of a Tether-only feature during a mod_wsgi reference run."""
    if httpd_env.reference:
        pytest.skip("Tether-only behaviour; the module under test is %s"
                    % httpd_env.module.path)


CHILD_CRASH = re.compile(r"AH0005[12]: child pid \d+ exit signal .*")
# A daemon process dead of a crash signal (SIGILL, SIGABRT, SIGBUS, SIGFPE,
# SIGSEGV); tests that kill daemons on purpose use SIGKILL.
DAEMON_CRASH = re.compile(r"TETHER0555: Daemon process .* died .*: "
                          r"signal (4|6|7|8|11) .*")


@pytest.fixture(autouse=True)
def _no_child_crashes():
    """Fails a test during which an Apache child or a daemon process died
    of a crash signal, or a sanitizer wrote a report."""
    marks = {srv: srv.log_mark() for srv in harness.LIVE_SERVERS}
    yield
    for srv in harness.LIVE_SERVERS:
        reports = srv.new_sanitizer_reports()
        if reports:
            srv.saw_failure = True
            pytest.fail(harness.format_sanitizer_reports(
                reports, "%s (%s)" % (srv.name, srv.sanitizer_dir)),
                pytrace=False)
    for srv in harness.LIVE_SERVERS:
        log = srv.error_log(since=marks.get(srv, 0))
        crash = CHILD_CRASH.search(log) or DAEMON_CRASH.search(log)
        if crash:
            pytest.fail("a process of %s crashed during this test: %s"
                        % (srv.name, crash.group(0)), pytrace=False)


# Tests that start Apaches the harness does not control, so without the
# sanitizer runtimes (which a TETHER_SANITIZE module cannot load without).
SANITIZE_SKIPPED = {
    "test_benchmarks_smoke.py": "benchmarks/run.py starts its own Apaches "
                                "without the sanitizer runtimes preloaded",
}


@pytest.fixture(scope="class", autouse=True)
def _class_httpd_config(request):
    """Restarts the module's `server` with the class's HTTPD_CONFIG."""
    config = getattr(request.cls, "HTTPD_CONFIG", None)
    if config is not None:
        request.getfixturevalue("server").restart(config)


@pytest.fixture(scope="module", params=[
    "event", pytest.param("prefork", marks=pytest.mark.prefork)])
def mpm(request):
    """The MPM of a module's server: its tests run under both."""
    return request.param


# Daemon processes do not care much which MPM relays to them: the daemon
# variant runs under event only.
SERVER_VARIANTS = [
    pytest.param(harness.ServerVariant("event", "embedded"), id="event"),
    pytest.param(harness.ServerVariant("prefork", "embedded"), id="prefork",
                 marks=pytest.mark.prefork),
    pytest.param(harness.ServerVariant("event", "daemon"), id="event-daemon",
                 marks=pytest.mark.daemon),
]


@pytest.fixture(scope="module", params=SERVER_VARIANTS)
def server_variant(request):
    """The MPM and WSGI mode of a module's server: event and prefork
    embedded, event daemon."""
    return request.param


def _is_daemon_variant(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return any(isinstance(value, harness.ServerVariant) and value.daemon
               for value in callspec.params.values())


def pytest_report_header(config):
    install = harness.find_apache()
    if isinstance(install, str):
        return "integration: no Apache (%s)" % install
    try:
        module = harness.find_module().path
    except harness.HarnessError as exc:
        module = "none (%s)" % exc
    return ["integration: %s (%s)" % (install.binary,
                                       install.version.splitlines()[0]),
            "integration: module %s, python home %s" % (module, sys.prefix)]


def pytest_collection_modifyitems(config, items):
    sanitize = harness.sanitize_enabled()
    for item in items:
        if str(item.path).startswith(INTEGRATION_DIR + os.sep):
            item.add_marker(pytest.mark.integration)
        if sanitize and item.path.name in SANITIZE_SKIPPED:
            item.add_marker(pytest.mark.skip(
                reason="TETHER_TEST_SANITIZE: "
                + SANITIZE_SKIPPED[item.path.name]))
        mark = item.get_closest_marker("xfail_daemon")
        if mark is not None and _is_daemon_variant(item):
            reason = mark.kwargs.get("reason") or \
                (mark.args[0] if mark.args else "")
            item.add_marker(pytest.mark.xfail(
                strict=True, reason="daemon mode: " + reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_MARKS] = {srv: srv.log_mark()
                          for srv in harness.LIVE_SERVERS}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    # Servers started by this test's fixtures read from their first line.
    marks = item.stash.get(_MARKS, {})
    for srv in harness.LIVE_SERVERS:
        marks.setdefault(srv, 0)
    item.stash[_MARKS] = marks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    marks = item.stash.get(_MARKS, {})
    for srv in harness.LIVE_SERVERS:
        srv.saw_failure = True
        lines = srv.error_log(since=marks.get(srv, 0)).splitlines()
        if len(lines) > _LOG_TAIL_LINES:
            lines = ["[... %d earlier lines ...]"
                     % (len(lines) - _LOG_TAIL_LINES)] \
                + lines[-_LOG_TAIL_LINES:]
        report.sections.append((
            "error_log of %s (%s, port %s)" % (srv.name, srv.root, srv.port),
            "\n".join(lines) or "(empty)"))
