"""docs/scale-out.md's recipe, tested: nginx load-balancing two
tether-express instances on loopback.

nginx terminates HTTP and HTTPS on the front and passes X-Forwarded-For
and X-Forwarded-Proto on; each instance trusts those headers from
127.0.0.1 only (--trust-proxy-header, --trust-proxy), so the application
sees the client's address and scheme.  The test client connects from
127.0.0.2, so that its address differs from nginx's.  One instance is
then stopped while threads keep making requests: nginx retries on the
other (proxy_next_upstream) and no request fails.

nginx runs from a configuration file in a temporary directory, on free
ports, with its own pid file, and is stopped by that pid.  The test is
skipped when nginx is not installed (Debian: apt-get install nginx).
"""

import concurrent.futures
import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

import harness
from test_express import accepting, clean_env, express_server
from test_express_https import make_certificate

APP = "client_app.wsgi"
CLIENT_ADDRESS = "127.0.0.2"
SPOOFED = "203.0.113.66"

NGINX_CONF = """\
# The front of docs/scale-out.md's recipe, on test ports.
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    upstream tether {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {dir}/server.crt;
        ssl_certificate_key {dir}/server.key;

        location / {{
            proxy_pass http://tether;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """A mod_wsgi reference run skips: tether-express loads mod_tether."""


def find_nginx():
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
         if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.skip("nginx is not installed (Debian: apt-get install "
                    "nginx): no load balancer for the scale-out recipe")
    return path


class Nginx:
    """nginx in the foreground from a config in a 0755 temporary
    directory; stopped by the pid in its pid file."""

    def __init__(self, port_a, port_b):
        self.binary = find_nginx()
        self.dir = tempfile.mkdtemp(prefix="tether-nginx-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        os.mkdir(os.path.join(self.dir, "tmp"))
        make_certificate(self.dir)
        self.crt = os.path.join(self.dir, "server.crt")
        self.http_port = harness.free_port()
        self.https_port = harness.free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        user = "user www-data;" if harness.running_as_root() else ""
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(
                user=user, dir=self.dir, port_a=port_a, port_b=port_b,
                http_port=self.http_port, https_port=self.https_port))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "-p", self.dir, "-c", self.conf, "-e",
             os.path.join(self.dir, "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=clean_env())
        harness.wait_for(
            lambda: self.proc.poll() is not None or (
                self.pid() and accepting(self.http_port)
                and accepting(self.https_port)),
            deadline=harness.START_DEADLINE, what="nginx to start")
        if self.proc.poll() is not None:
            raise harness.HarnessError("nginx exited with %d:\n%s\n%s" % (
                self.proc.returncode, self.proc.stderr.read().decode(),
                self.error_log()))

    def pid(self):
        try:
            with open(os.path.join(self.dir, "nginx.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        pid = self.pid()
        procs = [pid] + harness.child_pids(pid) if pid else []
        if pid and harness.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=harness.STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stderr.close()
        harness.wait_for(lambda: not [p for p in procs
                                      if harness.pid_alive(p)],
                         deadline=harness.STOP_DEADLINE, what="nginx to stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def get(port, path="/", https_crt=None, headers=None):
    """(status, parsed JSON or body) of a GET from CLIENT_ADDRESS."""
    if https_crt:
        context = ssl.create_default_context(cafile=https_crt)
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=harness.IO_TIMEOUT, context=context,
            source_address=(CLIENT_ADDRESS, 0))
    else:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=harness.IO_TIMEOUT,
            source_address=(CLIENT_ADDRESS, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.getheader("Content-Type") == "application/json":
        return resp.status, json.loads(body)
    return resp.status, body


def _instance(name):
    return express_server(
        "scale-" + name, lambda s: os.path.join(s.apps, APP),
        "--setenv", "TETHER_INSTANCE", name,
        "--trust-proxy-header", "X-Forwarded-For",
        "--trust-proxy-header", "X-Forwarded-Proto",
        "--trust-proxy", "127.0.0.1",
        "--health-url", "/-/health", "--threads", "10")


@pytest.fixture(scope="module")
def cluster():
    find_nginx()
    with _instance("a") as a, _instance("b") as b:
        nginx = Nginx(a.port, b.port)
        try:
            nginx.start()
            yield a, b, nginx
        except BaseException:
            print(nginx.error_log())
            raise
        finally:
            nginx.stop()


def test_scale_out_app_sees_the_client_address_not_the_balancer(cluster):
    _, _, nginx = cluster
    status, answer = get(nginx.http_port)
    assert status == 200, answer
    assert answer["remote_addr"] == CLIENT_ADDRESS
    assert answer["url_scheme"] == "http"
    assert answer["forwarded_for"] == CLIENT_ADDRESS


def test_scale_out_app_sees_https_when_the_balancer_terminates_tls(cluster):
    _, _, nginx = cluster
    status, answer = get(nginx.https_port, https_crt=nginx.crt)
    assert status == 200, answer
    assert answer["url_scheme"] == "https"
    assert answer["https"] in ("1", "on")
    assert answer["remote_addr"] == CLIENT_ADDRESS


def test_scale_out_spoofed_forwarded_for_is_not_believed(cluster):
    _, _, nginx = cluster
    status, answer = get(nginx.http_port,
                         headers={"X-Forwarded-For": SPOOFED})
    assert status == 200
    # The client made the first entry up; only nginx (trusted) vouches for
    # the second, the client's real address.
    assert answer["remote_addr"] == CLIENT_ADDRESS


def test_scale_out_instances_ignore_headers_from_untrusted_peers(cluster):
    a, _, _ = cluster
    status, answer = get(a.port, headers={"X-Forwarded-For": SPOOFED,
                                          "X-Forwarded-Proto": "https"})
    assert status == 200
    assert answer["remote_addr"] == CLIENT_ADDRESS
    assert answer["url_scheme"] == "http"


def test_scale_out_health_url_on_each_instance(cluster):
    a, b, _ = cluster
    for server in (a, b):
        assert get(server.port, "/-/health") == (200, b"OK\n")


def test_scale_out_balancer_carries_on_when_an_instance_stops(cluster):
    """Last: stops instance a."""
    a, b, nginx = cluster
    seen = {get(nginx.http_port)[1]["instance"] for _ in range(8)}
    assert seen == {"a", "b"}

    stopped = threading.Event()
    done = threading.Event()
    results = []        # (after the stop, status or exception, instance)
    lock = threading.Lock()

    def load():
        while not done.is_set():
            after = stopped.is_set()
            try:
                status, answer = get(nginx.http_port, "/slow/0.01")
                outcome = (after, status, answer.get("instance")
                           if isinstance(answer, dict) else answer)
            except (OSError, http.client.HTTPException) as exc:
                outcome = (after, repr(exc), None)
            with lock:
                results.append(outcome)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(load) for _ in range(4)]
        time.sleep(1.0)
        assert a.signal_and_wait(signal.SIGTERM) == 0
        stopped.set()
        time.sleep(3.0)
        done.set()
        for worker in workers:
            worker.result()

    before = [r for r in results if not r[0]]
    after = [r for r in results if r[0]]
    assert before and len(after) > 20, (len(before), len(after))
    failed = [r for r in results if r[1] != 200]
    assert not failed, "%d of %d requests failed: %s\n%s" % (
        len(failed), len(results), failed[:5], nginx.error_log())
    # Once a is gone, b serves everything.
    assert {r[2] for r in after} == {"b"}
    assert {r[2] for r in before} == {"a", "b"}
