"""The in-process API: the `mod_wsgi` module (alias of `_tether`, and what
the `tether` package re-exports inside Apache) in embedded and daemon mode:
its attributes, request_data(), the events with mod_wsgi's keyword
arguments, request_metrics()/process_metrics(), ApacheHandler, and
process_stopping at shutdown."""

import glob
import json
import os
import time

import pytest

import harness

CONFIG = """
WSGIScriptAlias /api @APPS@/inprocess_api.wsgi
"""

# The keyword arguments mod_wsgi documents for each event.
STARTED_KEYS = {"request_id", "thread_id", "request_data", "request_environ",
                "application_object", "server_pid", "request_start",
                "queue_start", "daemon_start", "application_start",
                "daemon_connects", "daemon_restarts"}
RESPONSE_KEYS = {"request_id", "request_data", "response_status",
                 "response_headers", "exception_info"}
FINISHED_KEYS = {"request_id", "thread_id", "request_data", "server_pid",
                 "request_start", "queue_start", "daemon_start",
                 "application_start", "application_finish",
                 "application_time", "output_length", "status",
                 "cpu_user_time", "cpu_system_time", "cpu_time"}
EXCEPTION_KEYS = {"request_id", "request_data", "exception_info"}


@pytest.fixture(scope="module", params=harness.WSGI_MODES)
def server(httpd_env, tether_only, request):
    with httpd_env.server(CONFIG, wsgi_mode=request.param,
                          name="api-" + request.param, daemon_processes=1,
                          daemon_threads=4) as srv:
        yield srv


def events_of(server, token, want, deadline=harness.WAIT_DEADLINE):
    """The events recorded for the request tagged `token`, once `want`
    (an event name) is among them."""
    path = os.path.join(server.scratch, "events.jsonl")
    end = time.monotonic() + deadline
    while True:
        found = []
        if os.path.exists(path):
            with open(path) as f:
                found = [json.loads(line) for line in f if line.strip()]
        found = [e for e in found if e["token"] == token]
        if any(e["event"] == want for e in found) or time.monotonic() > end:
            return {e["event"]: e for e in found}
        time.sleep(0.05)


def test_api_attributes_describe_the_process(server):
    resp = server.get("/api/attributes")
    assert resp.status == 200, resp
    attrs = resp.json()
    assert attrs["version"] == [6, 1, 1]
    assert attrs["version"] == attrs["environ_version"]
    assert len(attrs["tether_version"]) == 3
    assert attrs["process_group"] == server.process_group
    assert isinstance(attrs["application_group"], str)
    if server.daemon:
        assert attrs["maximum_processes"] == 1
        assert attrs["threads_per_process"] == 4
    else:
        assert attrs["maximum_processes"] >= 1
        assert attrs["threads_per_process"] >= 1
    # Inside Apache, the tether package re-exports the API.
    assert attrs["tether_is_api"] is True


def test_api_request_data_is_the_scratchpad_shared_with_subscribers(server):
    resp = server.get("/api/request-data?tok-data")
    assert resp.status == 200, resp
    data = resp.json()
    assert data == {"same": True, "token": "tok-data",
                    "seen": ["request_started"]}


def test_api_request_data_outside_a_request_raises(server):
    resp = server.get("/api/outside")
    assert "no request" in resp.json()["error"]


def test_api_events_fire_in_order_with_mod_wsgi_arguments(server):
    resp = server.get("/api/plain?tok-events")
    assert resp.status == 200 and resp.body == b"ok"
    events = events_of(server, "tok-events", "request_finished")
    assert set(events) == {"request_started", "response_started",
                           "request_finished"}
    assert set(events["request_started"]["keys"]) == STARTED_KEYS
    assert set(events["response_started"]["keys"]) == RESPONSE_KEYS
    assert events["response_started"]["response_status"] == "200 OK"
    finished = events["request_finished"]
    assert set(finished["keys"]) == FINISHED_KEYS
    assert finished["status"] == 200
    assert finished["application_time"] >= 0
    assert finished["seen"] == ["request_started", "response_started",
                                "request_finished"]


def test_api_request_exception_event_carries_exc_info(server):
    resp = server.get("/api/raise?tok-raise")
    assert resp.status == 500
    events = events_of(server, "tok-raise", "request_finished")
    assert set(events["request_exception"]["keys"]) == EXCEPTION_KEYS
    assert events["request_exception"]["exception"] == "ValueError"
    assert events["request_finished"]["status"] == 500


def test_api_request_started_can_replace_the_application(server):
    resp = server.get("/api/wrapped?tok-wrap")
    assert resp.status == 200
    assert resp.body == b"wrapped:ok"


def test_api_request_and_process_metrics(server):
    for _ in range(3):
        assert server.get("/api/plain?tok-metrics").status == 200
    metrics = server.get("/api/metrics").json()
    request, process = metrics["request"], metrics["process"]
    for key in ("request_count", "request_throughput", "capacity_utilization",
                "server_time", "application_time", "queue_time",
                "cpu_utilization", "memory_rss", "sample_period"):
        assert key in request, key
    if server.daemon:
        # One daemon process served them all.
        assert request["request_count"] >= 3
        assert process["request_count"] >= 3
        assert isinstance(request["queue_time"], float)
        assert 0 <= request["capacity_utilization"] <= 1
    else:
        # Apache's children share the requests.
        assert request["queue_time"] is None
        assert process["request_count"] >= request["request_count"]
    assert process["memory_rss"] > 0
    assert process["request_threads"] >= 1
    assert process["active_requests"] == 1      # this one
    assert process["cpu_time"] >= 0


def test_api_apache_handler_honours_loglevel(server):
    mark = server.log_mark()
    for level in ("debug", "info", "warning", "error"):
        assert server.get("/api/log?" + level).status == 200
    server.wait_for_log(r"\[tether:error\].*api-log-error line", since=mark)
    server.wait_for_log(r"\[tether:warn\].*api-log-warning line", since=mark)
    server.wait_for_log(r"\[tether:info\].*api-log-info line", since=mark)
    # LogLevel info: the debug record is filtered by Apache.
    assert "api-log-debug line" not in server.error_log(since=mark)


def test_api_process_stopping_fires_at_shutdown(httpd_env, tether_only):
    for mode in harness.WSGI_MODES:
        with httpd_env.server(CONFIG, wsgi_mode=mode,
                              name="api-stop-" + mode,
                              daemon_processes=1) as srv:
            assert srv.get("/api/plain?tok-stop").status == 200
            scratch = srv.scratch
            srv.stop()
            found = []
            end = time.monotonic() + harness.WAIT_DEADLINE
            while not found and time.monotonic() < end:
                found = glob.glob(os.path.join(scratch, "stopping-*.json"))
                time.sleep(0.05)
            assert found, mode
            with open(found[0]) as f:
                stopping = json.load(f)
            assert stopping == {"event": "process_stopping",
                                "reason": "shutdown_signal"}, mode
