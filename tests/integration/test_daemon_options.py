"""WSGIDaemonProcess options at run time, in a real Apache: each test looks
at what the option changes where it acts (the daemon process seen from
/proc, the thread serving the request, the daemon's own connections, what
the client receives, the error log), not only that Apache accepts it.

Most groups live in one server (`server`), each probed through
apps/daemon/options.wsgi under its own URL.  WSGISocketRotation is
server-wide, so its test has a server of its own."""

import concurrent.futures
import glob
import os
import re
import socket
import subprocess
import sys
import time

import pytest

import harness

D = "@APPS@/daemon/options.wsgi"

# The options of group "tuned" and what they must show at run time.
CPU_PRIORITY = 5
UMASK = 0o027
STACK_SIZE = 262144
SEND_BUFFER = 50000
RECEIVE_BUFFER = 60000
# Enough for Python and a few threads; not under the sanitizers, whose
# runtime reserves terabytes of address space.
VIRTUAL_MEMORY = 4 * 1024 ** 3
LOCALE = "C.UTF-8"
RESPONSE_SOCKET_TIMEOUT = 2
RESTART_INTERVAL = 4
# The client of the response-socket-timeout tests stalls this long.
STALL = 3 * RESPONSE_SOCKET_TIMEOUT

SOCKET_USER = "nobody"


def _vm_option():
    if harness.sanitize_enabled():
        return ""
    return " virtual-memory-limit=%d" % VIRTUAL_MEMORY


def _socket_user_group():
    """Group sockuser, whose socket belongs to SOCKET_USER: only root can
    give a file away."""
    if not harness.running_as_root():
        return ""
    return ("WSGIDaemonProcess sockuser processes=1 threads=1 "
            "display-name=%%{GROUP} socket-user=%s\n"
            "WSGIScriptAlias /sockuser %s process-group=sockuser "
            "application-group=%%{GLOBAL}\n" % (SOCKET_USER, D))


CONFIG = f"""
SetEnv TETHER_SCRATCH @SCRATCH@
WSGIDaemonProcess tuned processes=1 threads=4 display-name=%{{GROUP}} \\
    cpu-priority={CPU_PRIORITY} umask=0{UMASK:o} stack-size={STACK_SIZE} \\
    send-buffer-size={SEND_BUFFER} receive-buffer-size={RECEIVE_BUFFER} \\
    python-path=@SCRATCH@/pp1:@SCRATCH@/pp2 python-eggs=@SCRATCH@/eggs \\
    locale={LOCALE}{_vm_option()}
WSGIDaemonProcess plain display-name=%{{GROUP}}
WSGIDaemonProcess venvgrp processes=1 threads=2 display-name=%{{GROUP}} \\
    python-home=@SCRATCH@/venv
WSGIDaemonProcess bigbuf processes=1 threads=2 display-name=%{{GROUP}} \\
    response-buffer-size=4194304 send-buffer-size=1048576 \\
    receive-buffer-size=1048576
WSGIDaemonProcess rst processes=1 threads=2 display-name=%{{GROUP}} \\
    response-socket-timeout={RESPONSE_SOCKET_TIMEOUT} socket-timeout=30
WSGIDaemonProcess interval processes=1 threads=2 display-name=%{{GROUP}} \\
    restart-interval={RESTART_INTERVAL}
WSGIDaemonProcess cpulimit processes=1 threads=2 display-name=%{{GROUP}} \\
    cpu-time-limit=1
{_socket_user_group()}
WSGIScriptAlias /tuned {D} process-group=tuned application-group=%{{GLOBAL}}
WSGIScriptAlias /plain {D} process-group=plain application-group=%{{GLOBAL}}
WSGIScriptAlias /venv {D} process-group=venvgrp application-group=%{{GLOBAL}}
WSGIScriptAlias /bigbuf {D} process-group=bigbuf application-group=%{{GLOBAL}}
WSGIScriptAlias /rst {D} process-group=rst application-group=%{{GLOBAL}}
WSGIScriptAlias /interval {D} process-group=interval application-group=%{{GLOBAL}}
WSGIScriptAlias /cpulimit {D} process-group=cpulimit application-group=%{{GLOBAL}}

# process-group= of WSGIScriptAliasMatch: nothing else sends /match to a
# daemon (no WSGIProcessGroup applies there).
WSGIScriptAliasMatch ^/match/([a-z]+) {D} process-group=tuned application-group=%{{GLOBAL}}

# WSGIProcessGroup %{{ENV:...}}: the group is whatever SetEnv put there.
WSGIScriptAlias /envsel {D} application-group=%{{GLOBAL}}
<Location /envsel>
    WSGIProcessGroup %{{ENV:TETHER_TEST_GROUP}}
</Location>
<Location /envsel/tuned>
    SetEnv TETHER_TEST_GROUP tuned
</Location>
<Location /envsel/plain>
    SetEnv TETHER_TEST_GROUP plain
</Location>

# WSGIProcessGroup %{{GLOBAL}} in an inner scope overrides an outer group:
# the request runs embedded, in the Apache child.
WSGIScriptAlias /global {D} application-group=%{{GLOBAL}}
<Location /global>
    WSGIProcessGroup tuned
</Location>
<Location /global/embedded>
    WSGIProcessGroup %{{GLOBAL}}
</Location>
"""

# Enough Apache threads to send 15 requests to group plain at once.
MPM_SETTINGS = """\
<IfModule mpm_event_module>
    StartServers 2
    ServerLimit 2
    ThreadsPerChild 20
    ThreadLimit 20
    MinSpareThreads 5
    MaxSpareThreads 40
    MaxRequestWorkers 40
    MaxConnectionsPerChild 0
</IfModule>"""


def _prepare(srv):
    """What the config names must exist before Apache checks it: the
    python-path directories (with a module only pp1 has), the egg cache and
    a virtual environment for python-home= (readable by the children)."""
    for name, text in (("pp1", "WHERE = 'pp1'\n"), ("pp2", None)):
        path = os.path.join(srv.scratch, name)
        os.mkdir(path, 0o755)
        if text:
            with open(os.path.join(path, "daemon_options_probe.py"), "w") as f:
                f.write(text)
            os.chmod(os.path.join(path, "daemon_options_probe.py"), 0o644)
    os.mkdir(os.path.join(srv.scratch, "eggs"), 0o755)
    if harness.running_as_root():
        os.chown(os.path.join(srv.scratch, "eggs"), srv.uid, srv.gid)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                    os.path.join(srv.scratch, "venv")], check=True,
                   capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def server(httpd_env, tether_only):
    srv = httpd_env.server(CONFIG, name="daemon-options",
                           mpm_settings=MPM_SETTINGS)
    old = os.umask(0o022)
    try:
        _prepare(srv)
    finally:
        os.umask(old)
    with srv:
        for group in ("tuned", "plain", "venvgrp", "bigbuf", "rst",
                      "interval", "cpulimit"):
            harness.wait_for(lambda: srv.daemon_pids(group),
                             what="the daemon of group %s" % group)
        yield srv


def _ok(resp):
    assert resp.status == 200, resp
    return resp


def _report(server, url):
    return _ok(server.get(url)).json()


def _ready_line(server, group):
    """The TETHER0600 line of the latest daemon of `group`: (pid, threads,
    socket)."""
    found = re.findall(r"TETHER0600: daemon process \d+ of group '%s' ready "
                       r"\(pid (\d+), uid \d+, (\d+) threads, socket (\S+)\)"
                       % re.escape(group), server.error_log())
    assert found, "no TETHER0600 line for group %s" % group
    pid, threads, path = found[-1]
    return int(pid), int(threads), path


def _proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def _proc_limit(pid, name):
    """(soft, hard) of one line of /proc/<pid>/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith(name):
                soft, hard = line[len(name):].split()[:2]
                return soft, hard
    raise AssertionError("no %r in /proc/%d/limits" % (name, pid))


# --- the process: priority, limits, umask, Python set-up ---------------------

def test_daemon_cpu_priority_is_the_nice_value(server):
    pid = _report(server, "/tuned/report")["pid"]
    assert pid in server.daemon_pids("tuned")
    # Field 19 of /proc/<pid>/stat is the nice value (16 once the command
    # is cut off at ")").
    assert int(_proc_stat(pid)[16]) == CPU_PRIORITY
    plain = server.daemon_pids("plain")[0]
    assert int(_proc_stat(plain)[16]) == 0


@pytest.mark.skipif(harness.sanitize_enabled(),
                    reason="virtual-memory-limit is left out under the "
                           "sanitizers, which reserve terabytes of address "
                           "space")
def test_daemon_virtual_memory_limit_is_rlimit_as(server):
    pid = _report(server, "/tuned/report")["pid"]
    soft, _ = _proc_limit(pid, "Max address space")
    assert soft == str(VIRTUAL_MEMORY)
    plain = server.daemon_pids("plain")[0]
    assert _proc_limit(plain, "Max address space")[0] == "unlimited"


def test_daemon_stack_size_is_the_worker_threads_stack(server):
    """stack-size= is the stack of the threads that run the requests
    (what pthread_getattr_np says of the thread running the app)."""
    tuned = _report(server, "/tuned/report")["stack_size"]
    plain = _report(server, "/plain/report")["stack_size"]
    assert tuned == STACK_SIZE, (tuned, plain)
    assert plain != STACK_SIZE


def test_daemon_umask_applies_to_files_the_app_makes(server):
    """umask= needs no root: it holds in the daemon whoever runs the
    tests."""
    assert _report(server, "/tuned/report")["umask"] == UMASK
    made = _report(server, "/tuned/write-file")
    assert made["mode"] == 0o666 & ~UMASK
    assert os.stat(made["path"]).st_mode & 0o777 == 0o640
    assert _report(server, "/plain/report")["umask"] != UMASK


def test_daemon_python_home_is_the_venv(server):
    venv = os.path.realpath(os.path.join(server.scratch, "venv"))
    report = _report(server, "/venv/report")
    assert report["pid"] in server.daemon_pids("venvgrp")
    assert os.path.realpath(report["prefix"]) == venv
    assert report["base_prefix"] != report["prefix"]
    # The other groups keep WSGIPythonHome (the harness's venv).
    plain = _report(server, "/plain/report")
    assert os.path.realpath(plain["prefix"]) == os.path.realpath(sys.prefix)


def test_daemon_python_path_is_on_sys_path(server):
    report = _report(server, "/tuned/report")
    pp1 = os.path.join(server.scratch, "pp1")
    pp2 = os.path.join(server.scratch, "pp2")
    assert pp1 in report["path"] and pp2 in report["path"]
    assert report["path"].index(pp1) < report["path"].index(pp2)
    assert report["probe"] == "pp1"
    assert _report(server, "/plain/report")["probe"] is None


def test_daemon_python_eggs_sets_the_egg_cache(server):
    assert _report(server, "/tuned/report")["egg_cache"] == \
        os.path.join(server.scratch, "eggs")
    assert _report(server, "/plain/report")["egg_cache"] is None


def test_daemon_locale_is_python_s_locale(server):
    report = _report(server, "/tuned/report")
    assert report["lc_all"] == LOCALE
    assert report["lc_ctype"] == LOCALE
    assert report["codeset"] == "UTF-8"


# --- the defaults ------------------------------------------------------------

def test_daemon_defaults_apply_at_run_time(server):
    """A group with no options: one process of 15 threads, and response
    heads up to header-buffer-size=32768."""
    pids = server.daemon_pids("plain")
    assert len(pids) == 1
    pid, threads, _ = _ready_line(server, "plain")
    assert (pid, threads) == (pids[0], 15)
    # 15 requests run at once: 15 sleeps of 2s end well within 2 x 2s.
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(15) as pool:
        served = list(pool.map(
            lambda _: int(_ok(server.get("/plain/sleep?2")).body), range(15)))
    elapsed = time.monotonic() - start
    assert set(served) == {pid}
    assert elapsed < 3.9, elapsed
    # header-buffer-size: a head just under 32768 bytes passes, one above
    # it is refused naming the default.
    assert _ok(server.get("/plain/header?31000")).body == b"ok"
    mark = server.log_mark()
    assert server.get("/plain/header?34000").status == 502
    server.wait_for_log(r"TETHER0502: .*daemon group 'plain'.*exceed "
                        r"header-buffer-size=32768", since=mark)


# --- the transport -----------------------------------------------------------

def test_daemon_send_and_receive_buffer_sizes_on_daemon_connections(server):
    """The daemon's accepted connections carry SO_SNDBUF/SO_RCVBUF as
    asked (Linux reports twice the value set); other groups keep the
    system's default."""
    report = _report(server, "/tuned/report")
    assert report["connections"], report
    for _inode, sndbuf, rcvbuf in report["connections"]:
        assert (sndbuf, rcvbuf) == (2 * SEND_BUFFER, 2 * RECEIVE_BUFFER)
    plain = _report(server, "/plain/report")
    assert plain["connections"]
    for _inode, sndbuf, rcvbuf in plain["connections"]:
        assert (sndbuf, rcvbuf) != (2 * SEND_BUFFER, 2 * RECEIVE_BUFFER)


def _apache_side_buffers(server, daemon_inodes):
    """(sndbuf, rcvbuf) of the Apache children's ends of the connections
    to the daemon whose ends are `daemon_inodes`, from `ss -x -m`."""
    out = subprocess.run(["ss", "-x", "-a", "-m", "-n"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    found = []
    lines = out.splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        # u_str ESTAB recv send local local-inode peer peer-inode
        if len(fields) < 8 or fields[0] != "u_str":
            continue
        if not fields[7].isdigit() or int(fields[7]) not in daemon_inodes:
            continue
        # skmem:(...) ends the line, or is on the next one.
        text = line if "skmem:" in line else \
            (lines[i + 1] if i + 1 < len(lines) else "")
        skmem = re.search(r"skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)", text)
        if skmem:
            found.append((int(skmem.group(2)), int(skmem.group(1))))
    return found


@pytest.mark.skipif(not os.path.exists("/usr/bin/ss")
                    and not os.path.exists("/bin/ss"),
                    reason="needs ss (iproute2) to see the Apache end")
def test_daemon_buffer_sizes_on_apache_side_connections(server):
    report = _report(server, "/tuned/report")
    inodes = {inode for inode, _, _ in report["connections"]}
    found = _apache_side_buffers(server, inodes)
    assert found, "no Apache end found for the daemon's connections %s" \
        % sorted(inodes)
    for sndbuf, rcvbuf in found:
        assert (sndbuf, rcvbuf) == (2 * SEND_BUFFER, 2 * RECEIVE_BUFFER)


def test_daemon_connections_from_apache_are_reused(server):
    """Apache's children keep their connections to a daemon open between
    requests: 30 requests, each on a new client connection, are served
    over a handful of daemon connections, each still open (and listed by
    the daemon) in later requests."""
    seen = []
    for _ in range(30):
        report = _report(server, "/tuned/report")
        seen.append({inode for inode, _, _ in report["connections"]})
    union = set().union(*seen)
    # One connection per Apache child thread that relayed; without reuse,
    # each request would bring a connection of its own: 30.
    assert len(union) <= 4, seen
    common = set.intersection(*seen)
    assert common, "no daemon connection lasted over the 30 requests: %s" \
        % seen


def _chunk_sizes(body):
    """The sizes of the chunks of a chunked body, and whether it ended."""
    sizes, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return sizes, False
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return sizes, True
        sizes.append(size)
        pos = eol + 2 + size + 2


def test_daemon_response_buffer_size_bounds_what_is_passed_unflushed(server):
    """Apache's child passes a daemon's response on with a flush every
    response-buffer-size bytes at most (sooner when nothing more is
    waiting); each flush ends a chunk of the chunked response.  With the
    default, 65536, no chunk is larger; with 4 MiB and an 8 MiB item
    waiting in the socket, larger chunks go out."""
    total = 8 * 1024 * 1024
    resp = server.raw_request("GET", "/plain/one-item?%d" % total)
    assert resp.status == 200 and resp.header("Transfer-Encoding") == "chunked"
    sizes, complete = _chunk_sizes(resp.body)
    assert complete and sum(sizes) == total
    assert max(sizes) <= 65536, max(sizes)
    biggest = 0
    for _ in range(3):
        resp = server.raw_request("GET", "/bigbuf/one-item?%d" % total)
        sizes, complete = _chunk_sizes(resp.body)
        assert complete and sum(sizes) == total
        assert max(sizes) <= 4194304 + 65536, max(sizes)
        biggest = max(biggest, max(sizes))
        if biggest > 65536:
            break
    assert biggest > 65536, biggest


def _stalled_download(server, path, total):
    """Asks for `total` bytes, reads the head, stops reading for STALL
    seconds, then reads on: (body bytes received, seconds the read took,
    whether the chunked body ended)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    try:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(("GET %s?%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n" % (path, total)).encode())
        head, rest = harness.read_head(sock)
        assert head.status == 200, head
        time.sleep(STALL)
        start = time.monotonic()
        body = rest + harness.read_until_close(sock)
        return body, time.monotonic() - start
    finally:
        sock.close()


def test_daemon_response_socket_timeout_cuts_off_a_stalled_client(server):
    """A client that stops reading is cut off after
    response-socket-timeout (2s), though socket-timeout and Apache's
    Timeout are 30s; with the group's default (Apache's Timeout) the same
    client gets the whole response after its pause."""
    total = 64 * 1024 * 1024
    body, _ = _stalled_download(server, "/rst/stream", total)
    sizes, complete = _chunk_sizes(body)
    assert not complete
    assert sum(sizes) < total // 2, sum(sizes)
    body, _ = _stalled_download(server, "/plain/stream", total)
    sizes, complete = _chunk_sizes(body)
    assert complete and sum(sizes) == total


# --- recycling ---------------------------------------------------------------

def _serving_pid(server, url):
    resp = server.get(url)
    return resp.status == 200 and int(resp.body)


def _assert_recycled(server, group, first, limit, mark, **wait):
    """Daemon `first` of `group` logs that `limit` made it exit, and a new
    process of the group then serves /<group>/pid."""
    server.wait_for_log(r"TETHER0606: daemon process %d of group '%s' "
                        r"exits \(%s reached" % (first, group, limit),
                        since=mark, **wait)
    second = harness.wait_for(
        lambda: (lambda p: p != first and p)(
            _serving_pid(server, "/%s/pid" % group)),
        what="a new %s daemon" % group)
    assert second in server.daemon_pids(group)


def test_daemon_restart_interval_recycles(server):
    # The mark first: the process may reach its interval right after
    # answering.
    mark = server.log_mark()
    first = int(_ok(server.get("/interval/pid")).body)
    _assert_recycled(server, "interval", first, "restart-interval", mark,
                     deadline=RESTART_INTERVAL + 20)


def test_daemon_cpu_time_limit_recycles(server):
    mark = server.log_mark()
    # The request that passes the limit completes...
    first = int(_ok(server.get("/cpulimit/burn?2.5")).body)
    # ...then the process recycles.
    _assert_recycled(server, "cpulimit", first, "cpu-time-limit", mark)


# --- which group serves ------------------------------------------------------

def test_daemon_script_alias_match_process_group(server):
    report = _report(server, "/match/abc/report")
    assert report["process_group"] == "tuned"
    assert report["pid"] in server.daemon_pids("tuned")


def test_daemon_process_group_from_env(server):
    tuned = _report(server, "/envsel/tuned/report")
    plain = _report(server, "/envsel/plain/report")
    assert (tuned["process_group"], plain["process_group"]) == \
        ("tuned", "plain")
    assert tuned["pid"] in server.daemon_pids("tuned")
    assert plain["pid"] in server.daemon_pids("plain")


def test_daemon_global_process_group_overrides_outer_group(server):
    outer = _report(server, "/global/report")
    assert outer["process_group"] == "tuned"
    assert outer["pid"] in server.daemon_pids("tuned")
    inner = _report(server, "/global/embedded/report")
    assert inner["process_group"] == ""
    assert inner["pid"] in server.worker_pids()


# --- socket-user -------------------------------------------------------------

@pytest.mark.skipif(not harness.running_as_root(),
                    reason="socket-user= of another user needs root (only "
                           "root gives a file away)")
def test_daemon_socket_user_owns_socket_and_may_connect(server):
    from tether import _wire
    import pwd

    pid, _, path = _ready_line(server, "sockuser")
    st = os.stat(path)
    assert st.st_uid == pwd.getpwnam(SOCKET_USER).pw_uid
    assert st.st_mode & 0o777 == 0o600
    # The socket user is who the daemon talks to: a process running as
    # that user gets the daemon's HELLO...
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "s.settimeout(10)\n"
             "s.connect(sys.argv[1])\n"
             "sys.stdout.write(s.recv(64).hex())\n")
    out = subprocess.run([sys.executable, "-c", probe, path],
                         user=SOCKET_USER, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out
    head = bytes.fromhex(out.stdout)
    type_, _, length = _wire.decode_header(head[:_wire.HEADER_SIZE])
    assert type_ == _wire.HELLO
    assert _wire.decode_hello(head[_wire.HEADER_SIZE:
                                   _wire.HEADER_SIZE + length]) == pid
    # ...and Apache's children, who are not that user, cannot connect.
    mark = server.log_mark()
    assert server.get("/sockuser/pid").status == 503
    server.wait_for_log(r"TETHER0511: .*daemon group 'sockuser'", since=mark)


# --- WSGISocketRotation ------------------------------------------------------

ROTATION_CONFIG = f"""
WSGISocketRotation Off
WSGIDaemonProcess rot processes=1 threads=2 display-name=%{{GROUP}}
WSGIScriptAlias /rot {D} process-group=rot application-group=%{{GLOBAL}}
"""


def test_daemon_socket_rotation_off_keeps_the_path_across_graceful(
        httpd_env, tether_only):
    with httpd_env.server(ROTATION_CONFIG, name="daemon-rotation") as srv:
        first = int(_ok(srv.get("/rot/pid")).body)
        pid, _, path = _ready_line(srv, "rot")
        assert pid == first
        assert re.search(r"/wsgi\.%d\.u%d\.0\.sock$" % (srv.pid, srv.uid),
                         path), path
        srv.graceful()
        second = harness.wait_for(
            lambda: (lambda p: p != first and p)(
                _serving_pid(srv, "/rot/pid")),
            what="the daemon of the new generation")
        pid, _, again = _ready_line(srv, "rot")
        assert pid == second
        assert again == path
        assert os.path.exists(path)
        assert glob.glob(os.path.join(srv.root, "run", "wsgi.*.sock")) == \
            [path]
