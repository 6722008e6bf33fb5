"""Daemon mode, parent side: the Apache parent forks the WSGIDaemonProcess
processes, names them, runs them as the configured user (never root), owns
their sockets, replaces the ones that die (with back-off when they die at
start) and leaves none behind across graceful restarts, hard restarts and
stops.

Processes are found through /proc (Linux): the daemons are children of the
httpd parent whose command line is their display-name.
"""

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

import harness
from harness import read_head, read_until_close, decode_chunked

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self"),
    reason="the daemon process tests read /proc (Linux)")

NAME_A = "(wsgi:tether-da)"
NAME_B = "tether-test-daemon-b"
PROCESSES_A = 3

# A system user the daemons of group b switch to when the tests run as root.
TEST_USER = "tether-dtest"

SOCKET_RE = re.compile(r"^wsgi\.(\d+)\.(\d+)\.(\d+)\.sock$")


def config(user):
    """Two groups; group b runs as `user` (when root) with Apache's Group as
    a supplementary group, group a as Apache's User in its own home."""
    ident = ""
    if user:
        ident = "user=%s supplementary-groups=%s" % (
            user, harness.apache_identity()[3])
    return """
WSGIDaemonProcess tether-da processes=%d threads=2 display-name=%%{GROUP} \\
    home=@APPS@
WSGIDaemonProcess tether-db threads=1 display-name=%s %s
WSGIScriptAlias /a @APPS@/environ_app.wsgi process-group=tether-da \\
    application-group=%%{GLOBAL}
WSGIScriptAlias /r @APPS@/response_app.wsgi process-group=tether-da \\
    application-group=%%{GLOBAL}
""" % (PROCESSES_A, NAME_B, ident)


# --- /proc helpers -----------------------------------------------------------

def cmdline(pid):
    """The command line as `ps -o args` shows it, or None when gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def proc_status(pid):
    """/proc/<pid>/status as a dict of strings, {} when gone."""
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except OSError:
        pass
    return fields


def all_pids():
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def session_members(sid):
    """The pids in session `sid`.  `httpd -k start` leads a session of its
    own, and its children stay in it after it dies, when nothing else
    finds them any more (their parent is then init)."""
    return [pid for pid in all_pids()
            if proc_status(pid).get("NSsid") == str(sid)]


def daemons(srv, name):
    """The pids of srv's daemons called `name`, sorted."""
    return sorted(pid for pid in srv.children() if cmdline(pid) == name)


def wait_daemons(srv, name, count, exclude=()):
    """Waits until srv has `count` daemons called `name` besides those in
    `exclude`; returns their pids."""
    def ready():
        pids = [p for p in daemons(srv, name) if p not in exclude]
        return pids if len(pids) == count else None
    return harness.wait_for(ready, what="%d daemon(s) %r of httpd %s"
                            % (count, name, srv.pid))


def wait_gone(pids, what):
    harness.wait_for(lambda: not any(harness.pid_alive(p) for p in pids),
                     what=what)


def sockets(srv):
    """{(generation, index): path} of the daemon sockets in the run dir."""
    found = {}
    run = os.path.join(srv.root, "run")
    for entry in os.listdir(run):
        m = SOCKET_RE.match(entry)
        if m and int(m.group(1)) == srv.pid:
            found[(int(m.group(2)), int(m.group(3)))] = os.path.join(run,
                                                                     entry)
    return found


def log_times(text, pattern):
    """The times (seconds) of the error log lines matching `pattern`."""
    times = []
    for line in text.splitlines():
        if re.search(pattern, line):
            m = re.match(r"\[\w+ \w+ +\d+ (\d+):(\d+):(\d+\.\d+) \d+\]", line)
            if m:
                h, mi, s = m.groups()
                t = int(h) * 3600 + int(mi) * 60 + float(s)
                # Hours before the line above: past midnight, the next day.
                while times and t < times[-1] - 43200:
                    t += 86400
                times.append(t)
    return times


# --- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon_user():
    """As root: a system user for group b (made here, removed after)."""
    if not harness.running_as_root():
        yield None
        return
    try:
        pwd.getpwnam(TEST_USER)
        made = False
    except KeyError:
        if not shutil.which("useradd"):
            yield None
            return
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True)
        made = True
    try:
        yield TEST_USER
    finally:
        if made:
            subprocess.run(["userdel", TEST_USER], check=False,
                           capture_output=True)
            with contextlib.suppress(KeyError):
                grp.getgrnam(TEST_USER)
                subprocess.run(["groupdel", TEST_USER], check=False,
                               capture_output=True)


@pytest.fixture(scope="module")
def server(httpd_env, tether_only, mpm, daemon_user):
    with httpd_env.server(config(daemon_user), mpm=mpm,
                          name="daemon-" + mpm) as srv:
        yield srv


@pytest.fixture
def root_only():
    if not harness.running_as_root():
        pytest.skip("needs root: only root can switch the daemons' user")


# --- processes ---------------------------------------------------------------

def test_daemon_processes_are_children_with_display_name(server):
    pids_a = wait_daemons(server, NAME_A, PROCESSES_A)
    pids_b = wait_daemons(server, NAME_B, 1)
    for pid in pids_a + pids_b:
        status = proc_status(pid)
        assert int(status["PPid"]) == server.pid
        # The comm name (15 characters) says it too.
        assert status["Name"] == cmdline(pid)[:15]
        # Their own process group: Apache's killpg() does not reach them.
        assert os.getpgid(pid) == pid
    if shutil.which("ps"):
        out = subprocess.run(["ps", "-o", "pid=,args=", "-p",
                              ",".join(map(str, pids_a + pids_b))],
                             capture_output=True, text=True, check=True)
        shown = {int(line.split(None, 1)[0]): line.split(None, 1)[1].strip()
                 for line in out.stdout.splitlines()}
        assert shown == {**{p: NAME_A for p in pids_a},
                         **{p: NAME_B for p in pids_b}}


def test_daemon_processes_never_run_as_root(server):
    for pid in wait_daemons(server, NAME_A, PROCESSES_A) \
            + wait_daemons(server, NAME_B, 1):
        uids = [int(u) for u in proc_status(pid)["Uid"].split()]
        assert 0 not in uids, (pid, uids)
        if not harness.running_as_root():
            assert uids == [os.getuid()] * 4


def test_daemon_processes_run_as_apache_user_by_default(server, root_only):
    for pid in wait_daemons(server, NAME_A, PROCESSES_A):
        status = proc_status(pid)
        assert [int(u) for u in status["Uid"].split()] == [server.uid] * 4
        assert [int(g) for g in status["Gid"].split()] == [server.gid] * 4
        expected = set(os.getgrouplist(server.user, server.gid))
        assert {int(g) for g in status["Groups"].split()} == expected


def test_daemon_processes_run_as_configured_user(server, root_only,
                                                 daemon_user):
    if not daemon_user:
        pytest.skip("no useradd to make a user for the test")
    pw = pwd.getpwnam(daemon_user)
    (pid,) = wait_daemons(server, NAME_B, 1)
    status = proc_status(pid)
    assert [int(u) for u in status["Uid"].split()] == [pw.pw_uid] * 4
    assert [int(g) for g in status["Gid"].split()] == [pw.pw_gid] * 4
    # supplementary-groups= replaces the user's own list.
    assert {int(g) for g in status["Groups"].split()} \
        == {pw.pw_gid, server.gid}
    # Its home directory does not exist: the daemon stays in /.
    assert os.readlink("/proc/%d/cwd" % pid) == "/"


def test_daemon_home_is_the_working_directory(server):
    for pid in wait_daemons(server, NAME_A, PROCESSES_A):
        assert os.readlink("/proc/%d/cwd" % pid) == server.apps


def test_daemon_processes_hold_no_apache_listener(server):
    """Apache's listening sockets and the other group's socket are closed
    in the daemons; each keeps its own group's."""
    socks = sockets(server)
    gen = max(g for g, _ in socks)
    (pid,) = wait_daemons(server, NAME_B, 1)
    # The socket inode (socket:[N] of a descriptor) of each bound path.
    bound = {}
    with open("/proc/%d/net/unix" % pid) as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) >= 8:
                bound[parts[7]] = parts[6]
    inodes = {index: bound[path] for (g, index), path in socks.items()
              if g == gen}
    held = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        with contextlib.suppress(OSError):
            held.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
    sock_fds = [h for h in held if h.startswith("socket:")]
    # stdin is /dev/null; no TCP listener of Apache's among the sockets.
    assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
    tcp_inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), \
                open("/proc/%d/net/%s" % (pid, table)) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[3] == "0A":            # LISTEN
                    tcp_inodes.add(parts[9])
    held_inodes = {h[len("socket:["):-1] for h in sock_fds}
    assert not held_inodes & tcp_inodes
    assert inodes[1] in held_inodes
    assert inodes[0] not in held_inodes


# --- the sockets -------------------------------------------------------------

def test_daemon_sockets_are_private_to_the_worker_user(server):
    socks = sockets(server)
    gen = max(g for g, _ in socks)
    current = {index: path for (g, index), path in socks.items() if g == gen}
    assert sorted(current) == [0, 1]
    owner = server.uid if harness.running_as_root() else os.getuid()
    for path in current.values():
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert st.st_uid == owner


def test_daemon_user_root_is_refused_by_configtest(server):
    rc, out = server.configtest(
        "WSGIDaemonProcess rooted user=root display-name=x\n")
    assert rc != 0
    assert "root" in out


def test_daemon_socket_in_a_missing_directory_fails_start(httpd_env,
                                                          tether_only):
    """A socket that cannot be made stops the start: Apache exits, having
    started no daemon."""
    srv = httpd_env.server("""
WSGISocketPrefix @ROOT@/no-such-dir/wsgi
WSGIDaemonProcess tether-nosock display-name=tether-test-nosock
""", name="daemon-nosock")
    srv.port = harness.free_port()
    srv.write_config()
    proc = subprocess.Popen(
        [srv.install.binary, "-d", srv.root, "-f", srv.conf_path,
         "-DFOREGROUND"], env=srv.process_env(), cwd=srv.root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            proc.wait(timeout=harness.START_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=harness.STOP_DEADLINE)
            pytest.fail("httpd started although the socket directory "
                        "does not exist")
        assert proc.returncode != 0
        log = srv.error_log()
        assert re.search(r"TETHER0551: Could not create the listening "
                         r"socket '[^']*/no-such-dir/wsgi\.\d+\.1\.0\.sock' "
                         r"of WSGIDaemonProcess group 'tether-nosock'.*"
                         r"bind\(\) failed.*WSGISocketPrefix", log), log
        assert not [p for p in all_pids()
                    if cmdline(p) == "tether-test-nosock"]
        srv.check_sanitizer_reports()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.cleanup()


def _socket_file(path):
    """Leaves a socket file nobody listens on at `path`, as a killed Apache
    does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()


def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    if harness.pid_alive(proc.pid):
        pytest.skip("pid %d was taken again at once" % proc.pid)
    return proc.pid


def test_daemon_sockets_left_by_a_killed_apache_are_removed_at_start(
        httpd_env, tether_only):
    """The socket files of an Apache that was SIGKILLed stay behind (no
    clean-up runs); the next start removes those of pids that no longer
    run, and only those: sockets, with our prefix, nobody listening."""
    srv = httpd_env.server("""
WSGISocketPrefix @ROOT@/socks/wsgi
WSGIDaemonProcess tether-sweep display-name=tether-test-sweep
""", name="daemon-sweep")
    socks = os.path.join(srv.root, "socks")
    os.mkdir(socks)
    os.chmod(socks, 0o755)
    dead = _dead_pid()
    stale = ["wsgi.%d.1.0.sock" % dead, "wsgi.%d.3.1.sock" % dead,
             "wsgi.%d.u33.0.sock" % dead]     # WSGISocketRotation Off
    for name in stale:
        _socket_file(os.path.join(socks, name))
    kept = {
        # a live pid (this test's): another Apache's, say
        "wsgi.%d.1.0.sock" % os.getpid(): _socket_file,
        # not a socket
        "wsgi.%d.2.0.sock" % dead: lambda p: open(p, "w").close(),
        # another prefix
        "other.%d.1.0.sock" % dead: _socket_file,
        # not a socket name of ours
        "wsgi.%d.1.0.socket" % dead: _socket_file,
    }
    for name, make in kept.items():
        make(os.path.join(socks, name))
    # A listening socket under a dead pid's name (an Apache of another pid
    # namespace sharing the directory) is kept too.
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(os.path.join(socks, "wsgi.%d.4.0.sock" % dead))
    listening.listen(1)
    try:
        with srv:
            names = set(os.listdir(socks))
            assert not names & set(stale), names
            assert set(kept) | {"wsgi.%d.4.0.sock" % dead} <= names
            assert "wsgi.%d.1.0.sock" % srv.pid in names
            assert re.search(r"TETHER0569: Removed 3 socket file\(s\) of "
                             r"daemon groups from '[^']*/socks' left by "
                             r"Apache processes that no longer run",
                             srv.error_log())
            # The group has its own socket, and its daemon.
            wait_daemons(srv, "tether-test-sweep", 1)
    finally:
        listening.close()


# --- supervision -------------------------------------------------------------

def test_daemon_killed_is_respawned(server):
    before = wait_daemons(server, NAME_A, PROCESSES_A)
    victim = before[0]
    mark = server.log_mark()
    os.kill(victim, signal.SIGKILL)
    after = wait_daemons(server, NAME_A, PROCESSES_A, exclude=[victim])
    assert set(before[1:]) < set(after)
    server.wait_for_log(r"TETHER0555: Daemon process \d of group 'tether-da' "
                        r"\(pid %d\) died .*signal 9 \(Killed\)" % victim,
                        since=mark)


def test_daemon_graceful_restart_replaces_daemons(server):
    old_a = wait_daemons(server, NAME_A, PROCESSES_A)
    old_b = wait_daemons(server, NAME_B, 1)
    old_socks = sockets(server)
    old_gen = max(g for g, _ in old_socks)
    parent = server.pid
    mark = server.log_mark()
    server.graceful()
    assert server.pid == parent
    new_a = wait_daemons(server, NAME_A, PROCESSES_A, exclude=old_a)
    new_b = wait_daemons(server, NAME_B, 1, exclude=old_b)
    assert not set(new_a + new_b) & set(old_a + old_b)
    new_socks = sockets(server)
    assert {(old_gen + 1, 0), (old_gen + 1, 1)} <= set(new_socks)
    server.wait_for_log(r"TETHER0562: Graceful restart: %d daemon "
                        r"process\(es\) of generation %d told to finish"
                        % (PROCESSES_A + 1, old_gen), since=mark)
    # The old daemons finish and go; then their socket files go too.
    wait_gone(old_a + old_b, "the daemons of the old generation to exit")
    harness.wait_for(
        lambda: not [k for k in sockets(server) if k[0] == old_gen],
        what="the old generation's socket files to be removed")
    assert server.get("/a").status == 200


def test_daemon_graceful_restart_lets_requests_finish(server):
    """A request in flight in an old daemon completes after the graceful
    restart; the old daemon goes once it has."""
    old = wait_daemons(server, NAME_A, PROCESSES_A)
    old_gen = max(g for g, _ in sockets(server))
    release = server.scratch_path("release")
    with server.connect() as sock:
        sock.sendall(("GET /r/stream?release=%s HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n" % release).encode())
        head, body = read_head(sock)
        assert head.status == 200
        while b"first" not in body:
            body += sock.recv(65536)
        server.graceful()
        wait_daemons(server, NAME_A, PROCESSES_A, exclude=old)
        # The old daemon serving the request is still there, the others
        # (idle) are gone.
        busy = harness.wait_for(
            lambda: [p for p in old if harness.pid_alive(p)]
            if sum(harness.pid_alive(p) for p in old) == 1 else None,
            what="the idle old daemons to exit")
        assert (old_gen, 0) in sockets(server)
        with open(release, "w"):
            pass
        body += read_until_close(sock)
    data, complete = decode_chunked(body)
    assert complete and data == b"first\nsecond\n"
    wait_gone(busy, "the old daemon to exit once its request is done")
    harness.wait_for(
        lambda: (old_gen, 0) not in sockets(server),
        what="the old generation's socket file to be removed")


def test_daemon_recycled_is_replaced_at_once(httpd_env, tether_only):
    """A daemon that exits with status 0 (maximum-requests reached) is
    replaced without back-off."""
    with httpd_env.server("""
WSGIDaemonProcess tether-recycle display-name=tether-test-recycle \\
    maximum-requests=1
WSGIScriptAlias /a @APPS@/environ_app.wsgi process-group=tether-recycle \\
    application-group=%{GLOBAL}
""", name="daemon-recycle") as srv:
        for _ in range(3):
            (pid,) = wait_daemons(srv, "tether-test-recycle", 1)
            mark = srv.log_mark()
            assert srv.get("/a").status == 200
            srv.wait_for_log(r"TETHER0554: Daemon process 0 of group "
                             r"'tether-recycle' \(pid %d\) exited \(status "
                             r"0\); starting a new one" % pid, since=mark)
            wait_daemons(srv, "tether-test-recycle", 1, exclude=[pid])
        log = srv.error_log()
        assert "TETHER0555" not in log
        assert "before it starts" not in log


def test_daemon_user_is_ignored_without_root(httpd_env, tether_only):
    """Without root nobody can switch users: the daemons run as the user
    Apache runs as, and the start says that user= was ignored."""
    if harness.running_as_root():
        pytest.skip("runs as a normal user only")
    other = next((u for u in ("daemon", "www-data", "nobody")
                  if u in {p.pw_name for p in pwd.getpwall()}
                  and pwd.getpwnam(u).pw_uid != os.getuid()), None)
    if not other:
        pytest.skip("no other user on this system")
    with httpd_env.server("""
WSGIDaemonProcess tether-notroot user=%s display-name=tether-test-notroot
""" % other, name="daemon-notroot") as srv:
        (pid,) = wait_daemons(srv, "tether-test-notroot", 1)
        uids = [int(u) for u in proc_status(pid)["Uid"].split()]
        assert uids == [os.getuid()] * 4
        assert re.search(r"TETHER0561: WSGIDaemonProcess group "
                         r"'tether-notroot' .*user=/group= ignored",
                         srv.error_log())


def test_daemon_hard_restart_replaces_daemons(server):
    old = wait_daemons(server, NAME_A, PROCESSES_A) \
        + wait_daemons(server, NAME_B, 1)
    old_gen = max(g for g, _ in sockets(server))
    pattern = re.compile(r"resuming normal operations")
    before = len(pattern.findall(server.error_log()))
    result = server._httpd("-k", "restart")
    assert result.returncode == 0, result.stdout + result.stderr
    harness.wait_for(
        lambda: len(pattern.findall(server.error_log())) > before,
        what="the restart")
    # A hard restart waits for the old daemons before it starts new ones.
    assert not any(harness.pid_alive(p) for p in old)
    assert not [k for k in sockets(server) if k[0] == old_gen]
    wait_daemons(server, NAME_A, PROCESSES_A, exclude=old)
    wait_daemons(server, NAME_B, 1, exclude=old)
    assert {(old_gen + 1, 0), (old_gen + 1, 1)} <= set(sockets(server))


STUCK_CONFIG = """
WSGIDaemonProcess tether-stuck processes=2 display-name=tether-test-stuck \\
    eviction-timeout=1 shutdown-timeout=1
"""


def test_daemon_stuck_is_killed_after_timeouts(httpd_env, tether_only):
    """A daemon that does not react to signals (here: stopped) is killed:
    after a graceful restart once eviction and shutdown timeouts have
    passed, at a stop once shutdown-timeout has."""
    srv = httpd_env.server(STUCK_CONFIG, name="daemon-stuck")
    stuck = []
    try:
        srv.start()
        old = wait_daemons(srv, "tether-test-stuck", 2)
        gen = max(g for g, _ in sockets(srv))
        os.kill(old[0], signal.SIGSTOP)
        stuck.append(old[0])
        mark = srv.log_mark()
        srv.graceful()
        new = wait_daemons(srv, "tether-test-stuck", 2, exclude=old)
        srv.wait_for_log(r"TETHER0563: Daemon process of group "
                         r"'tether-stuck' from before the restart \(pid %d\) "
                         r"did not finish.*SIGKILL" % old[0], since=mark)
        wait_gone(old, "the stuck old daemon to be killed")
        harness.wait_for(lambda: (gen, 0) not in sockets(srv),
                         what="the old socket file to be removed")

        os.kill(new[0], signal.SIGSTOP)
        stuck.append(new[0])
        mark = srv.log_mark()
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 10
        assert re.search(r"TETHER0563: Daemon process of group "
                         r"'tether-stuck' \(pid %d\) did not exit within "
                         r"shutdown-timeout; sending SIGKILL" % new[0],
                         srv.error_log(since=mark))
        assert not any(harness.pid_alive(p) for p in old + new)
    except BaseException:
        srv.saw_failure = True
        raise
    finally:
        for pid in stuck:
            if harness.pid_alive(pid) and cmdline(pid) == "tether-test-stuck":
                os.kill(pid, signal.SIGKILL)
        srv.stop()
        srv.cleanup()


def test_daemon_dying_at_start_is_restarted_with_back_off(httpd_env,
                                                          tether_only):
    """A daemon that cannot start (here: its home directory is missing) is
    restarted after 1, 2, 4 ... seconds, not in a loop."""
    with httpd_env.server("""
WSGIDaemonProcess tether-broken display-name=tether-test-broken \\
    home=/nonexistent/tether-home
""", name="daemon-backoff") as srv:
        srv.wait_for_log(r"TETHER0555: .*'tether-broken'.*restarting it in "
                         r"4 s", deadline=40)
        log = srv.error_log()
        assert "TETHER0559: Daemon process of group 'tether-broken'" in log
        deaths = re.findall(r"TETHER0555: .*", log)
        assert "exit status 78" in deaths[0]
        delays = [int(d) for d in
                  re.findall(r"restarting it in (\d+) s", log)][:3]
        assert delays == [1, 2, 4]
        times = log_times(log, r"TETHER0555: ")[:3]
        assert times[1] - times[0] >= 0.9
        assert times[2] - times[1] >= 1.9
        # Apache itself serves on.
        assert srv.get("/").status in (200, 403, 404)
        # The replacement waiting out its back-off goes with Apache.
        waiting = daemons(srv, "tether-test-broken")
    assert not any(harness.pid_alive(p) for p in waiting)


STOP_CONFIG = """
WSGIDaemonProcess tether-stop-a processes=2 display-name=tether-test-stop-a
WSGIDaemonProcess tether-stop-b display-name=tether-test-stop-b
"""


def test_daemon_stop_leaves_no_daemon(httpd_env, tether_only, mpm):
    names = ("tether-test-stop-a", "tether-test-stop-b")
    srv = httpd_env.server(STOP_CONFIG, mpm=mpm, name="daemon-stop-" + mpm)
    try:
        srv.start()
        pids = wait_daemons(srv, names[0], 2) + wait_daemons(srv, names[1], 1)
        parent = srv.pid
        socks = list(sockets(srv).values())
        assert len(socks) == 2
        # The harness waits for every child of the parent to be gone.
        srv.stop()
        assert not any(harness.pid_alive(p) for p in pids)
        left = [p for p in all_pids()
                if cmdline(p) in names
                or proc_status(p).get("PPid") == str(parent)]
        assert not left
        assert not [s for s in socks if os.path.exists(s)]
    except BaseException:
        srv.saw_failure = True
        raise
    finally:
        srv.stop()
        srv.cleanup()


def test_daemon_exits_when_the_parent_is_killed(httpd_env, tether_only):
    """Even a parent killed with SIGKILL (no clean-up at all) leaves no
    daemon behind: they stop when their parent dies."""
    srv = httpd_env.server("""
WSGIDaemonProcess tether-orphan processes=2 display-name=tether-test-orphan
""", name="daemon-orphan")
    leftovers = []
    session = None
    try:
        srv.start()
        pids = wait_daemons(srv, "tether-test-orphan", 2)
        leftovers = srv.children()
        # So that the clean-up below finds Apache's children, even those
        # the MPM starts after this point.
        assert set(leftovers) <= set(session_members(srv.pid))
        session = srv.pid
        os.kill(srv.pid, signal.SIGKILL)
        wait_gone([srv.pid], "the parent to die")
        wait_gone(pids, "the daemons to stop after their parent died")
        assert not [p for p in all_pids()
                    if cmdline(p) == "tether-test-orphan"]
    except BaseException:
        srv.saw_failure = True
        raise
    finally:
        # Apache's own children may outlive a SIGKILLed parent for a while
        # (and daemons, should this test fail): they go by pid, checked.
        # The snapshot above can miss a child the MPM started later: the
        # parent's session has them all.
        if session:
            leftovers = set(leftovers) | set(session_members(session))
        else:
            # Failed before the kill: the parent is still there to stop.
            srv.stop()
        for pid in leftovers:
            line = cmdline(pid) or ""
            if harness.pid_alive(pid) and (
                    line == "tether-test-orphan"
                    or line.startswith(srv.install.binary)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        srv.pid = None
        with contextlib.suppress(ValueError):
            harness.LIVE_SERVERS.remove(srv)
        srv.cleanup()
