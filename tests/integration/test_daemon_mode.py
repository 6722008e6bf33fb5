"""Daemon mode end to end: the same environ as embedded mode, the transport's
failure kinds, recycling and restarts under load, timeouts, and who may
connect to a daemon's socket."""

import concurrent.futures
import glob
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import harness

D = "@APPS@/daemon"


def _group_pids(server, name):
    """Pids of the daemon processes of group `name` (children of httpd)."""
    pids = []
    for pid in server.children():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"(wsgi:%s)" % name.encode() in f.read():
                    pids.append(pid)
        except OSError:
            pass
    return sorted(pids)


def _socket_paths(server):
    return glob.glob(os.path.join(server.root, "run", "wsgi.*.sock"))


# --- the same environ in both modes -----------------------------------------

ENVIRON_CONFIG = f"""
AllowEncodedSlashes NoDecode
WSGIDaemonProcess envgrp processes=2 threads=10 display-name=%{{GROUP}}
WSGIScriptAlias /app {D}/environ_dump.wsgi application-group=shared
# Where the app writes the environ of a HEAD request (X-Tether-Dump).
SetEnv TETHER_DUMP_DIR @SCRATCH@
<Location /app>
    WSGIChunkedRequest On
    WSGIPassAuthorization On
</Location>
<If "%{{HTTP:X-Tether-Mode}} == 'daemon'">
    WSGIProcessGroup envgrp
</If>
"""

# Keys that differ between two requests whatever the mode, or that name the
# process group (the issue allows those to differ).
VARYING = {"REMOTE_PORT", "mod_wsgi.request_id", "tether.request_id",
           "mod_wsgi.request_start", "tether.request_start",
           "mod_wsgi.script_start", "tether.script_start",
           "mod_wsgi.queue_start", "UNIQUE_ID", "_pid"}
GROUP_KEYS = {"mod_wsgi.process_group", "tether.process_group",
              "HTTP_X_TETHER_MODE"}

MATRIX = [
    ("GET", "/app", [], None),
    ("GET", "/app/plain/path", [], None),
    ("GET", "/app//double//slashes///x", [], None),
    ("GET", "/app/enc%2Fslash/%41%20b?q=1&r=%2F%20&empty=", [], None),
    ("GET", "/app/x?only-query", [("Cookie", "a=1; b=2"),
                                  ("Accept-Language", "en, fr;q=0.5"),
                                  ("X-Custom", "v1"), ("X_Under", "drop"),
                                  ("Authorization", "Basic dTpw")], None),
    ("HEAD", "/app/head", [("X-Tether-Dump", "head")], None),
    ("POST", "/app/form", [("Content-Type",
                            "application/x-www-form-urlencoded")],
     b"a=1&b=%20two"),
    ("POST", "/app/empty", [("Content-Type", "text/plain")], b""),
    ("PUT", "/app/put", [("Content-Type", "application/octet-stream")],
     os.urandom(70000)),
    ("POST", "/app/chunked", [("Transfer-Encoding", "chunked")],
     harness.encode_chunked([b"abc", b"", b"defgh" * 1000])),
]


def _environ(server, method, path, headers, body, mode):
    hdrs = list(headers) + [("X-Tether-Mode", mode)]
    if body is not None and not any(k == "Transfer-Encoding" for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    dump = dict(hdrs).get("X-Tether-Dump")
    if dump:
        dump = os.path.join(server.scratch, "%s-%s.json" % (dump, mode))
        if os.path.exists(dump):
            os.unlink(dump)
    resp = server.raw_request(method, path, headers=hdrs, body=body or b"")
    assert resp.status == 200, resp
    if method == "HEAD":
        # No body comes back: the app wrote its environ to a file.
        assert resp.body == b""
        assert dump, "a HEAD case needs an X-Tether-Dump header"
        return server.wait_for_json(dump)
    body = resp.body
    if resp.header("Transfer-Encoding") == "chunked":
        body, complete = harness.decode_chunked(body)
        assert complete
    return json.loads(body)


class TestSameEnviron:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(ENVIRON_CONFIG, name="daemon-environ") as srv:
            yield srv

    @pytest.mark.parametrize("method,path,headers,body", MATRIX,
                             ids=["%s %s" % (m[0], m[1]) for m in MATRIX])
    def test_daemon_environ_matches_embedded(self, server, method, path,
                                             headers, body):
        embedded = _environ(server, method, path, headers, body, "embedded")
        daemon = _environ(server, method, path, headers, body, "daemon")
        assert embedded["REQUEST_METHOD"] == daemon["REQUEST_METHOD"]
        # The application read the body sent, byte for byte, in both.
        if body is None:
            sent = b""
        elif dict(headers).get("Transfer-Encoding") == "chunked":
            sent, complete = harness.decode_chunked(body)
            assert complete
        else:
            sent = body
        digest = hashlib.sha256(sent).hexdigest()
        assert embedded["_body_sha256"] == daemon["_body_sha256"] == digest
        assert embedded["mod_wsgi.process_group"] == ""
        assert daemon["mod_wsgi.process_group"] == "envgrp"
        skip = VARYING | GROUP_KEYS
        e = {k: v for k, v in embedded.items() if k not in skip}
        d = {k: v for k, v in daemon.items() if k not in skip}
        assert sorted(e) == sorted(d), \
            "keys only in embedded: %s; only in daemon: %s" % (
                sorted(set(e) - set(d)), sorted(set(d) - set(e)))
        for key in e:
            assert e[key] == d[key], key

    def test_daemon_head_served_without_body(self, server):
        for mode in ("embedded", "daemon"):
            resp = server.raw_request("HEAD", "/app/h",
                                      headers=[("X-Tether-Mode", mode)])
            assert resp.status == 200
            assert resp.body == b""
            assert int(resp.header("Content-Length")) > 0

    def test_daemon_requests_run_in_daemon_processes(self, server):
        """The app's own pid: a daemon of envgrp for the daemon requests,
        an Apache child for the others."""
        pids = _group_pids(server, "envgrp")
        assert len(pids) == 2
        daemon = {int(_environ(server, "GET", "/app/pid", [], None,
                               "daemon")["_pid"]) for _ in range(10)}
        assert daemon and daemon <= set(pids), (daemon, pids)
        embedded = {int(_environ(server, "GET", "/app/pid", [], None,
                                 "embedded")["_pid"]) for _ in range(10)}
        assert embedded and not embedded & set(pids), (embedded, pids)
        assert embedded <= set(server.worker_pids()), embedded


# --- failures ------------------------------------------------------------------

FAILURE_CONFIG = f"""
WSGIDaemonProcess fail processes=1 threads=4 display-name=%{{GROUP}} socket-timeout=2
WSGIDaemonProcess small processes=1 threads=2 display-name=%{{GROUP}} header-buffer-size=8192
WSGIScriptAlias /f {D}/behaviours.wsgi process-group=fail application-group=%{{GLOBAL}}
WSGIScriptAlias /s {D}/behaviours.wsgi process-group=small application-group=%{{GLOBAL}}
"""


class TestFailureKinds:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(FAILURE_CONFIG, name="daemon-fail") as srv:
            yield srv

    def _wait_group(self, server, name, count=1):
        return harness.wait_for(lambda: len(_group_pids(server, name)) >= count
                                and _group_pids(server, name),
                                what="daemon group %s" % name)

    def test_daemon_died_before_headers_is_502_naming_group(self, server):
        self._wait_group(server, "fail")
        mark = server.log_mark()
        resp = server.get("/f/die-before-headers")
        assert resp.status == 502
        # Group, socket, the daemon's pid and the signal that killed it.
        line = server.wait_for_log(r".*TETHER0509: Daemon process of group "
                                   r"'fail' \(socket \S+\.sock, pid "
                                   r"(\d+)\) was killed by signal 9 .*"
                                   r"before sending response headers",
                                   since=mark)
        assert int(line.group(1)) > 0
        # Respawned: later requests succeed.
        harness.wait_for(lambda: server.get("/f/pid").status == 200,
                         what="a respawned daemon")

    def test_daemon_died_mid_body_chunked_client_sees_truncation(self, server):
        self._wait_group(server, "fail")
        resp = server.raw_request("GET", "/f/die-mid-body")
        assert resp.status == 200
        assert resp.header("Transfer-Encoding") == "chunked"
        body, complete = harness.decode_chunked(resp.body)
        assert body.startswith(b"first chunk")
        assert not complete, "a broken response was presented as complete"

    def test_daemon_died_mid_body_content_length_is_short(self, server):
        harness.wait_for(lambda: server.get("/f/pid").status == 200,
                         what="a respawned daemon")
        conn = server.http()
        try:
            conn.request("GET", "/f/die-mid-body-cl")
            resp = conn.getresponse()
            assert resp.status == 200
            with pytest.raises(http.client.IncompleteRead):
                resp.read()
        finally:
            conn.close()

    def test_daemon_header_over_buffer_size_is_502_naming_option(self, server):
        self._wait_group(server, "small")
        mark = server.log_mark()
        assert server.get("/s/big-header").status == 502
        server.wait_for_log(r"TETHER0502: .*daemon group 'small'.*exceed "
                            r"header-buffer-size=8192", since=mark)

    def test_daemon_socket_timeout_is_504(self, server):
        harness.wait_for(lambda: server.get("/f/pid").status == 200,
                         what="a respawned daemon")
        mark = server.log_mark()
        assert server.get("/f/sleep?4").status == 504
        server.wait_for_log(r"TETHER0508: Timeout waiting for the response "
                            r"of daemon group 'fail'.*socket-timeout",
                            since=mark)

    def test_daemon_app_exception_is_500_with_traceback(self, server):
        harness.wait_for(lambda: server.get("/f/pid").status == 200,
                         what="a respawned daemon")
        mark = server.log_mark()
        assert server.get("/f/raise").status == 500
        server.wait_for_log(r"TETHER0302: RuntimeError: daemon boom",
                            since=mark)
        # The process lives on.
        assert server.get("/f/pid").status == 200


STOPPED_CONFIG = f"""
WSGIDaemonProcess stopped processes=1 threads=1 display-name=%{{GROUP}} listen-backlog=1 connect-timeout=1 socket-timeout=3
WSGIScriptAlias /t {D}/behaviours.wsgi process-group=stopped application-group=%{{GLOBAL}}
"""


def test_daemon_backlog_full_is_503_and_queue_is_504(httpd_env):
    with httpd_env.server(STOPPED_CONFIG, name="daemon-stopped") as server:
        pid = harness.wait_for(lambda: _group_pids(server, "stopped"),
                               what="the daemon")[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            mark = server.log_mark()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: server.get("/t/pid").status,
                                         range(8)))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert set(statuses) <= {503, 504}, statuses
        assert 503 in statuses, statuses
        server.wait_for_log(r"TETHER0511: Unable to connect to daemon group "
                            r"'stopped' on socket \S+ within connect-timeout "
                            r"\(listen backlog full\)", since=mark)
        harness.wait_for(lambda: server.get("/t/pid").status == 200,
                         what="the daemon to serve again")


# --- timeouts and recycling ----------------------------------------------------

TIMEOUT_CONFIG = f"""
WSGIDaemonProcess slow processes=1 threads=3 display-name=%{{GROUP}} request-timeout=2 graceful-timeout=5
WSGIDaemonProcess idle processes=1 threads=2 display-name=%{{GROUP}} inactivity-timeout=1
WSGIDaemonProcess queued processes=1 threads=1 display-name=%{{GROUP}} queue-timeout=1 socket-timeout=30
WSGIDaemonProcess broken processes=1 threads=1 display-name=%{{GROUP}} startup-timeout=1
WSGIDaemonProcess capped processes=1 threads=2 display-name=%{{GROUP}} memory-limit=150000000
WSGIDaemonProcess stuckgil processes=1 threads=2 display-name=%{{GROUP}} deadlock-timeout=2 socket-timeout=30
WSGIScriptAlias /stuckgil {D}/behaviours.wsgi process-group=stuckgil application-group=%{{GLOBAL}}
WSGIScriptAlias /capped {D}/behaviours.wsgi process-group=capped application-group=%{{GLOBAL}}
WSGIScriptAlias /broken {D}/broken_import.wsgi process-group=broken application-group=%{{GLOBAL}}
WSGIScriptAlias /slow {D}/behaviours.wsgi process-group=slow application-group=%{{GLOBAL}}
WSGIScriptAlias /idle {D}/behaviours.wsgi process-group=idle application-group=%{{GLOBAL}}
WSGIScriptAlias /queued {D}/behaviours.wsgi process-group=queued application-group=%{{GLOBAL}}
"""


class TestTimeouts:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(TIMEOUT_CONFIG, name="daemon-timeouts") as srv:
            yield srv

    def test_daemon_request_timeout_fails_only_stuck_request(self, server):
        harness.wait_for(lambda: server.get("/slow/pid").status == 200,
                         what="group slow")
        mark = server.log_mark()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(server.get, "/slow/sleep?30")
            time.sleep(0.3)
            # Another request of the same process completes meanwhile.
            ok = server.get("/slow/sleep?0.5")
            assert ok.status == 200 and ok.body == b"slept 0.5"
            assert stuck.result(timeout=20).status == 504
        server.wait_for_log(r"TETHER0604: daemon group 'slow' .*request-timeout",
                            since=mark)
        # The stuck thread's Python stack is in the log.
        server.wait_for_log(r"TETHER0605: .*time\.sleep\(seconds\)", since=mark)
        harness.wait_for(lambda: server.get("/slow/pid").status == 200,
                         what="the recycled group")

    def test_daemon_inactivity_timeout_recycles_idle_process(self, server):
        first = int(server.get("/idle/pid").body)
        mark = server.log_mark()
        server.wait_for_log(r"TETHER0606: daemon process %d of group 'idle' "
                            r"exits \(inactivity-timeout reached" % first,
                            since=mark)
        second = harness.wait_for(
            lambda: (lambda r: r.status == 200 and int(r.body))(
                server.get("/idle/pid")), what="a new idle daemon")
        assert second != first

    def test_daemon_startup_timeout_restarts_process_that_cannot_load(self,
                                                                      server):
        first = _group_pids(server, "broken")
        mark = server.log_mark()
        assert server.get("/broken").status == 500
        server.wait_for_log(r"ImportError: tether test: this application "
                            r"never loads", since=mark)
        server.wait_for_log(r"TETHER0606: daemon process \d+ of group "
                            r"'broken' exits \(startup-timeout reached",
                            since=mark)
        harness.wait_for(lambda: _group_pids(server, "broken")
                         and _group_pids(server, "broken") != first,
                         what="a new daemon for group broken")

    def test_daemon_memory_limit_recycles_gracefully(self, server):
        first = int(server.get("/capped/pid").body)
        mark = server.log_mark()
        # Growing past the limit still completes the request...
        resp = server.get("/capped/grow?200000000")
        assert resp.status == 200 and int(resp.body) == first
        # ...and then the process recycles.
        server.wait_for_log(r"TETHER0606: daemon process %d of group "
                            r"'capped' exits \(memory-limit exceeded" % first,
                            since=mark)
        second = harness.wait_for(
            lambda: (lambda r: r.status == 200 and int(r.body))(
                server.get("/capped/pid")), what="a new capped daemon")
        assert second != first

    def test_daemon_deadlock_timeout_restarts_process(self, server):
        first = int(server.get("/stuckgil/pid").body)
        mark = server.log_mark()
        # The daemon dies with the request in it: the client gets a 502.
        assert server.get("/stuckgil/hold-gil").status == 502
        server.wait_for_log(r"TETHER0607: daemon process %d of group "
                            r"'stuckgil': Python's GIL was not released for "
                            r"deadlock-timeout=2s" % first, since=mark)
        second = harness.wait_for(
            lambda: (lambda r: r.status == 200 and int(r.body))(
                server.get("/stuckgil/pid")), what="a new daemon")
        assert second != first

    def test_daemon_queue_timeout_is_504(self, server):
        harness.wait_for(lambda: server.get("/queued/pid").status == 200,
                         what="group queued")
        mark = server.log_mark()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            busy = pool.submit(server.get, "/queued/sleep?3")
            time.sleep(0.3)
            waited = server.get("/queued/pid")
            assert busy.result(timeout=20).status == 200
        assert waited.status == 504
        server.wait_for_log(r"TETHER0602: Queue timeout expired for WSGI "
                            r"daemon group 'queued'", since=mark)


def _load(server, path, seconds, workers=8):
    """Sends requests from `workers` threads for `seconds`; statuses."""
    return harness.load(server, path, seconds, workers)


RECYCLE_CONFIG = f"""
WSGIDaemonProcess recycled processes=2 threads=4 display-name=%{{GROUP}} maximum-requests=50
WSGIDaemonProcess steady processes=2 threads=4 display-name=%{{GROUP}}
WSGIScriptAlias /r {D}/behaviours.wsgi process-group=recycled application-group=%{{GLOBAL}}
WSGIScriptAlias /st {D}/behaviours.wsgi process-group=steady application-group=%{{GLOBAL}}
"""


class TestUnderLoad:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_env):
        with httpd_env.server(RECYCLE_CONFIG, name="daemon-load") as srv:
            yield srv

    def test_daemon_maximum_requests_recycles_without_failures(self, server):
        harness.wait_for(lambda: server.get("/r/pid").status == 200,
                         what="group recycled")
        before = set(_group_pids(server, "recycled"))
        mark = server.log_mark()
        statuses = _load(server, "/r/pid", 4)
        assert len(statuses) > 200
        assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
        server.wait_for_log(r"exits \(maximum-requests reached", since=mark)
        after = set(_group_pids(server, "recycled"))
        assert after - before, "no daemon process was replaced"

    def test_daemon_requests_spread_over_processes(self, server):
        """Apache's connections are persistent: each daemon process takes
        its share of them, so both processes serve about half the load."""
        harness.wait_for(lambda: len(_group_pids(server, "steady")) == 2,
                         what="group steady")
        end = time.monotonic() + 3

        def run():
            out = []
            while time.monotonic() < end:
                resp = server.get("/st/pid")
                assert resp.status == 200
                out.append(int(resp.body))
            return out

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(run) for _ in range(8)]
            served = [p for f in futures for p in f.result()]
        counts = {pid: served.count(pid) for pid in set(served)}
        assert sorted(counts) == _group_pids(server, "steady"), counts
        assert min(counts.values()) >= 0.2 * len(served), counts

    def test_daemon_kill_9_under_load_only_in_flight_fail(self, server):
        harness.wait_for(lambda: server.get("/st/pid").status == 200,
                         what="group steady")
        victim = _group_pids(server, "steady")[0]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            load = pool.submit(_load, server, "/st/pid", 4, 6)
            time.sleep(1)
            os.kill(victim, signal.SIGKILL)
            statuses = load.result()
        failures = [s for s in statuses if s != 200]
        # At most the requests that were inside the killed process.
        assert len(failures) <= 4, failures
        assert victim not in _group_pids(server, "steady")
        after = _load(server, "/st/pid", 1, 4)
        assert set(after) == {200}
        harness.wait_for(lambda: len(_group_pids(server, "steady")) == 2,
                         what="the respawned daemon")

    def test_daemon_graceful_restart_under_load_without_failures(self, server):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            load = pool.submit(_load, server, "/st/sleep?0.2", 5, 6)
            time.sleep(1.5)
            server.graceful()
            statuses = load.result()
        assert len(statuses) > 20
        assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]


# --- the socket --------------------------------------------------------------

SOCKET_CONFIG = f"""
WSGIDaemonProcess sock processes=1 threads=2 display-name=%{{GROUP}}
WSGIScriptAlias /k {D}/behaviours.wsgi process-group=sock application-group=%{{GLOBAL}}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_daemon_socket_refuses_other_local_users(httpd_env):
    with httpd_env.server(SOCKET_CONFIG, name="daemon-socket") as server:
        assert server.get("/k/pid").status == 200
        paths = [p for p in _socket_paths(server)]
        if not paths:
            paths = glob.glob("/tmp/**/wsgi.*.sock", recursive=False)
        assert paths, "no daemon socket found under %s" % server.root
        path = paths[0]
        st = os.stat(path)
        assert st.st_mode & 0o777 == 0o600
        assert st.st_uid == server.uid
        probe = ("import socket, sys\n"
                 "s = socket.socket(socket.AF_UNIX)\n"
                 "try:\n"
                 "    s.connect(sys.argv[1])\n"
                 "except PermissionError:\n"
                 "    print('refused')\n"
                 "else:\n"
                 "    s.settimeout(5)\n"
                 "    try:\n"
                 "        s.sendall(b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x00')\n"
                 "        print('closed' if s.recv(1) == b'' else 'answered')\n"
                 "    except ConnectionError:\n"
                 "        print('closed')\n")
        out = subprocess.run([sys.executable, "-c", probe, path], user="nobody",
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "refused", out
        # Even with the file opened up, the daemon checks who is calling.
        mark = server.log_mark()
        os.chmod(path, 0o666)
        try:
            out = subprocess.run([sys.executable, "-c", probe, path],
                                 user="nobody", capture_output=True, text=True,
                                 timeout=30)
        finally:
            os.chmod(path, 0o600)
        assert out.stdout.strip() == "closed", out
        server.wait_for_log(r"TETHER0603: daemon group 'sock': refused a "
                            r"connection from uid \d+", since=mark)


def _read_frame(sock):
    """(type, flags, payload) of the next frame on `sock`, None at EOF."""
    from tether import _wire

    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exactly(_wire.HEADER_SIZE)
    if head is None:
        return None
    type_, flags, length = _wire.decode_header(head)
    return type_, flags, exactly(length) if length else b""


def test_daemon_hangs_up_idle_connections_with_goodbye(httpd_env):
    """A daemon that stops says GOODBYE on its idle connections before
    hanging up, so Apache knows a request it sent meanwhile was not read
    and sends it to another process."""
    from tether import _wire

    with httpd_env.server(SOCKET_CONFIG, name="daemon-goodbye") as server:
        assert server.get("/k/pid").status == 200
        path = _socket_paths(server)[0]
        pid = _group_pids(server, "sock")[0]
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        try:
            s.connect(path)
            type_, _, payload = _read_frame(s)
            assert type_ == _wire.HELLO
            assert _wire.decode_hello(payload) == pid
            mark = server.log_mark()
            os.kill(pid, signal.SIGUSR1)
            assert _read_frame(s) == (_wire.GOODBYE, 0, b"")
            assert _read_frame(s) is None
        finally:
            s.close()
        server.wait_for_log(r"TETHER0606: daemon process %d of group 'sock' "
                            r"exits \(graceful stop requested" % pid,
                            since=mark)
        # Apache's own pooled connection to it got the same GOODBYE; the
        # next request goes to the replacement without an error.
        harness.wait_for(lambda: _group_pids(server, "sock") not in ([], [pid]),
                         what="the replacement daemon")
        mark = server.log_mark()
        assert server.get("/k/pid").status == 200
        assert "TETHER05" not in server.error_log(since=mark)


# --- isolation between groups -------------------------------------------------

ISOLATION_CONFIG = f"""
WSGIDaemonProcess one processes=1 threads=2 display-name=%{{GROUP}}
WSGIDaemonProcess two processes=1 threads=2 display-name=%{{GROUP}}
WSGIScriptAlias /one @APPS@/directives/groups.wsgi process-group=one application-group=%{{GLOBAL}}
WSGIScriptAlias /two @APPS@/directives/groups.wsgi process-group=two application-group=%{{GLOBAL}}
"""


def test_daemon_groups_are_isolated(httpd_env):
    with httpd_env.server(ISOLATION_CONFIG, name="daemon-groups") as server:
        one = server.get("/one").json()
        two = server.get("/two").json()
        # Different processes, so different interpreters and module state.
        assert one["pid"] != two["pid"]
        assert one["pid"] in _group_pids(server, "one")
        assert two["pid"] in _group_pids(server, "two")
        assert one["token"] != two["token"]
        # Each request's environ names its own group.
        assert (one["process_group"], two["process_group"]) == ("one", "two")
        environ_one = server.get("/one").json()
        assert environ_one["pid"] == one["pid"]
        assert environ_one["counter"] == one["counter"] + 1
        assert server.get("/two").json()["counter"] == two["counter"] + 1


# --- script reloading in daemons -----------------------------------------------

RELOAD_CONFIG = """
WSGIDaemonProcess reloading processes=1 threads=2 display-name=%{GROUP}
WSGIScriptAlias /rl @SCRATCH@/reload.wsgi process-group=reloading application-group=%{GLOBAL}
<Directory @SCRATCH@>
    Require all granted
</Directory>
"""


def _write_script(path, version, mtime_shift=0):
    with open(path, "w") as f:
        f.write("def application(environ, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [%r]\n" % version.encode())
    os.chmod(path, 0o644)
    if mtime_shift:
        st = os.stat(path)
        os.utime(path, (st.st_atime, st.st_mtime + mtime_shift))


def test_daemon_script_reloading_picks_up_changed_script(httpd_env):
    server = httpd_env.server(RELOAD_CONFIG, name="daemon-reload")
    # The script must exist when the configuration is checked.
    _write_script(os.path.join(server.scratch, "reload.wsgi"), "one")
    with server:
        assert {server.get("/rl").body for _ in range(4)} == {b"one"}
        _write_script(os.path.join(server.scratch, "reload.wsgi"), "two",
                      mtime_shift=2)
        assert {server.get("/rl").body for _ in range(4)} == {b"two"}


# --- preloading in daemons ---------------------------------------------------

PRELOAD_CONFIG = """
WSGIDaemonProcess preload processes=2 threads=2 display-name=%{GROUP}
WSGIDaemonProcess aliased processes=1 threads=2 display-name=%{GROUP}
WSGIImportScript @APPS@/directives/preload.wsgi process-group=preload application-group=%{GLOBAL}
WSGIScriptAlias /pre @APPS@/directives/preload.wsgi process-group=preload application-group=%{GLOBAL}
WSGIScriptAlias /ali @APPS@/directives/groups.wsgi process-group=aliased application-group=%{GLOBAL}
"""


def test_daemon_import_script_and_alias_preload_at_start(httpd_env):
    server = httpd_env.server(PRELOAD_CONFIG, name="daemon-preload")
    with server:
        pids = harness.wait_for(
            lambda: len(_group_pids(server, "preload")) == 2
            and _group_pids(server, "preload"), what="two preload daemons")
        # WSGIImportScript with process-group= runs in each daemon of the
        # group as it starts, before any request.
        for pid in pids:
            server.wait_for_log(r"preload\.wsgi executed in pid %d" % pid)
        assert "[client " not in server.error_log()
        # A WSGIScriptAlias naming both groups preloads its script too.
        aliased = _group_pids(server, "aliased")[0]
        server.wait_for_log(r"TETHER0206: Loaded WSGI script '[^']*groups\.wsgi'"
                            r" into application group '' of process %d"
                            % aliased)
        # The preloaded module serves the requests: loaded once per process.
        resp = server.get("/pre")
        pid = int(resp.body.split(b" ")[0])
        assert pid in pids
        assert server.error_log().count("executed in pid %d" % pid) == 1
