"""Tether's Prometheus endpoint (TetherMetricsURL), scraped and parsed with
prometheus_client's parser, covering Apache's children (embedded mode) and
a daemon process group that recycles; the Tether section of mod_status;
and server_metrics() with WSGIServerMetrics / server-metrics=."""

import json
import os
import shutil

import pytest

import harness

prometheus_parser = pytest.importorskip(
    "prometheus_client.parser",
    reason="prometheus_client (the test extra) is not installed")

CONFIG = """
TetherMetricsURL /metrics
WSGIServerMetrics On
{status_module}
<Location /server-status>
    SetHandler server-status
</Location>
WSGIDaemonProcess recycle processes=2 threads=3 maximum-requests=4
WSGIDaemonProcess quiet processes=1 threads=2 server-metrics=On
WSGIScriptAlias /embedded @APPS@/inprocess_api.wsgi
WSGIScriptAlias /recycle @APPS@/inprocess_api.wsgi process-group=recycle
WSGIScriptAlias /quiet @APPS@/inprocess_api.wsgi process-group=quiet
"""


@pytest.fixture(scope="module")
def server(httpd_env, tether_only):
    if not httpd_env.install.has_module("status"):
        pytest.skip("Apache has no mod_status")
    config = CONFIG.format(
        status_module=httpd_env.install.module_line("status"))
    with httpd_env.server(config, name="metrics") as srv:
        yield srv


def scrape(server):
    resp = server.get("/metrics")
    assert resp.status == 200, resp
    assert resp.header("Content-Type").startswith("text/plain; version=0.0.4")
    families = prometheus_parser.text_string_to_metric_families(
        resp.body.decode("utf-8"))
    return {f.name: f for f in families}


def samples(families, family, name=None, **labels):
    return [s for s in families[family].samples
            if (name is None or s.name == name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


def total(families, family, name=None, **labels):
    return sum(s.value for s in samples(families, family, name, **labels))


@pytest.fixture(scope="module")
def traffic(server):
    """Requests in embedded mode (one fails) and to the recycling group,
    enough for each of its processes to restart; the families after it."""
    for _ in range(5):
        assert server.get("/embedded/plain").status == 200
    assert server.get("/embedded/raise").status == 500
    for _ in range(12):
        assert server.get("/recycle/plain").status == 200
    assert server.get("/quiet/plain").status == 200

    def restarted():
        # Counters are updated once the response has gone out: wait for
        # the last ones too.
        families = scrape(server)
        done = (total(families, "tether_process_restarts",
                      group="recycle", reason="maximum_requests") >= 2
                and total(families, "tether_requests", group="quiet") == 1
                and total(families, "tether_requests", group="recycle") >= 12
                and total(families, "tether_requests", mode="embedded") >= 6)
        alive = len(samples(families, "tether_process_resident_memory_bytes",
                            group="recycle")) == 2
        return families if done and alive else None

    return harness.wait_for(restarted, interval=0.2, what="two recycled daemon processes")


def test_metrics_requests_by_status_cover_children_and_daemons(traffic):
    assert total(traffic, "tether_requests", mode="embedded",
                 code="2xx") >= 5
    assert total(traffic, "tether_requests", mode="embedded",
                 code="5xx") >= 1
    # Counters survive the recycling of the process in a slot.
    assert total(traffic, "tether_requests", group="recycle",
                 code="2xx") >= 12
    assert total(traffic, "tether_requests", group="quiet", code="2xx") == 1


def test_metrics_latency_histogram_counts_every_request(traffic):
    family = "tether_request_duration_seconds"
    count = total(traffic, family, family + "_count", group="recycle")
    assert count == total(traffic, "tether_requests", group="recycle")
    inf = total(traffic, family, family + "_bucket", group="recycle",
                le="+Inf")
    assert inf == count
    assert total(traffic, family, family + "_sum", group="recycle") > 0


def test_metrics_queue_time_for_daemon_processes_only(traffic):
    family = "tether_request_queue_seconds"
    assert total(traffic, family, family + "_count", group="recycle") >= 12
    assert not samples(traffic, family, mode="embedded")


def test_metrics_threads_active_and_idle(traffic):
    for process in ("0", "1"):
        active = total(traffic, "tether_threads", group="recycle",
                       process=process, state="active")
        idle = total(traffic, "tether_threads", group="recycle",
                     process=process, state="idle")
        assert active == 0 and idle == 3
    # This scrape is not a WSGI request: no embedded thread is busy.
    assert total(traffic, "tether_threads", mode="embedded",
                 state="active") == 0


def test_metrics_restarts_by_reason(traffic):
    reasons = {s.labels["reason"] for s in samples(
        traffic, "tether_process_restarts", group="recycle")}
    assert {"maximum_requests", "crash", "graceful_signal"} <= reasons
    assert total(traffic, "tether_process_restarts", group="recycle",
                 reason="crash") == 0


def test_metrics_rss_of_each_live_process(traffic):
    for s in samples(traffic, "tether_process_resident_memory_bytes",
                     mode="daemon"):
        assert s.value > 1024 * 1024
    assert samples(traffic, "tether_process_resident_memory_bytes",
                   mode="embedded")


def test_metrics_only_get(server):
    resp = server.request("POST", "/metrics", body=b"")
    assert resp.status == 405


def test_server_status_shows_tether_daemon_groups(server, traffic):
    resp = server.get("/server-status?auto")
    assert resp.status == 200
    text = resp.body.decode()
    assert "TetherGroup: recycle" in text
    assert "TetherGroup: quiet" in text
    html = server.get("/server-status").body.decode()
    assert "Tether daemon process groups" in html


def test_server_metrics_gated_like_mod_wsgi(server, traffic):
    # WSGIServerMetrics On: embedded mode sees the table.
    table = server.get("/embedded/server-metrics").json()["server"]
    groups = {p["process_group"] for p in table["processes"]}
    assert {"recycle", "quiet", ""} <= groups
    # server-metrics=On for "quiet"; off (the default) for "recycle".
    assert server.get("/quiet/server-metrics").json()["server"]
    assert server.get("/recycle/server-metrics").json()["server"] is None


# --- tether-express ------------------------------------------------------------

def test_express_metrics_status_and_json_logs(httpd_env, tether_only):
    from test_express import express_server, http_get

    if not httpd_env.install.has_module("status"):
        pytest.skip("Apache has no mod_status")
    def app_files(server):
        app = os.path.join(server.apps, "inprocess_api.wsgi")
        shutil.copy(os.path.join(harness.APPS_SOURCE, "inprocess_api.wsgi"),
                    app)
        os.chmod(app, 0o644)
        scratch = os.path.join(server.work, "scratch")
        os.mkdir(scratch)
        os.chmod(scratch, 0o777)    # the app's event log, any user
        return (app,)

    with express_server(
            "observability", "--metrics-url", "/metrics", "--server-status",
            "--log-format", "json", "--access-log",
            "--log-level", "info", make_files=app_files) as srv:
        status, _ = http_get(srv.port, "/raise")
        assert status == 500
        for _ in range(3):
            assert http_get(srv.port, "/plain")[0] == 200

        def served():
            status, body = http_get(srv.port, "/metrics")
            assert status == 200
            families = {f.name: f for f in
                        prometheus_parser.text_string_to_metric_families(
                            body.decode())}
            return families if total(families, "tether_requests",
                                     mode="daemon") >= 4 else None

        families = harness.wait_for(served, interval=0.2,
                                    what="four requests counted")
        assert total(families, "tether_requests", mode="daemon",
                     code="5xx") == 1
        status, body = http_get(srv.port, "/server-status?auto")
        assert status == 200 and b"TetherGroup: " in body

        # Every error log line is a JSON object, tracebacks included.
        error_lines = harness.wait_for(
            lambda: [line for line in srv.error_log().splitlines()
                     if "raised on purpose" in line], what="the traceback")
        records = [json.loads(line) for line in srv.error_log().splitlines()]
        assert any(r.get("module") == "tether" and r.get("level") == "error"
                   for r in records)
        assert all("message" in r for r in records)
        assert error_lines
        access_path = os.path.join(srv.root, "logs", "access_log")

        def access_records():
            if not os.path.exists(access_path):
                return None
            with open(access_path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            paths = {r["path"] for r in records}
            return records if {"/raise", "/plain"} <= paths else None

        access = harness.wait_for(access_records,
                                  what="JSON access log lines")
        assert {r["status"] for r in access} >= {200, 500}
