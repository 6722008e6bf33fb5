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
                 "application_time", "input_reads", "input_length",
                 "input_time", "output_writes", "output_length",
                 "output_time", "status", "cpu_user_time", "cpu_system_time",
                 "cpu_time", "gil_wait_time", "gil_wait_count"}
# The phases request_metrics() gives a mean, extremes and buckets of.
PHASES = ("server_time", "queue_time", "daemon_time", "application_time",
          "request_time", "input_read_time", "output_write_time",
          "gil_wait_time")
DAEMON_PHASES = ("queue_time", "daemon_time")
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


def test_api_request_finished_counts_the_body_read(server):
    body = os.urandom(50000)
    resp = server.post("/api/upload/all?tok-in-all", body)
    assert resp.status == 200 and resp.json() == {"read": len(body)}
    finished = events_of(server, "tok-in-all", "request_finished")[
        "request_finished"]
    assert finished["input_length"] == len(body)
    # 50 reads of 1000 bytes by the application, fewer from Apache (the
    # look-ahead of 8 KiB), and at least one.
    assert 1 <= finished["input_reads"] <= 50
    assert finished["input_time"] >= 0
    # Every read from Apache gives the GIL up and takes it back.
    assert finished["gil_wait_count"] >= finished["input_reads"]
    assert finished["gil_wait_time"] >= 0


def test_api_request_finished_input_length_is_what_the_app_read(server):
    resp = server.post("/api/upload/10?tok-in-part", b"x" * 20000)
    assert resp.status == 200 and resp.json() == {"read": 10}
    finished = events_of(server, "tok-in-part", "request_finished")[
        "request_finished"]
    assert finished["input_length"] == 10
    assert finished["input_reads"] == 1


def test_api_request_finished_without_a_body_reads_nothing(server):
    assert server.get("/api/plain?tok-in-none").status == 200
    finished = events_of(server, "tok-in-none", "request_finished")[
        "request_finished"]
    assert finished["input_reads"] == 0
    assert finished["input_length"] == 0
    assert finished["input_time"] == 0


@pytest.mark.parametrize("kind", ["writes", "yields"])
def test_api_request_finished_counts_the_response_writes(server, kind):
    token = "tok-out-%s" % kind
    resp = server.get("/api/%s/7?%s" % (kind, token))
    assert resp.status == 200 and len(resp.body) == 700
    finished = events_of(server, token, "request_finished")[
        "request_finished"]
    assert finished["output_writes"] == 7
    assert finished["output_length"] == 700
    assert finished["output_time"] >= 0
    assert finished["status"] == 200


def test_api_request_finished_counts_a_list_as_one_write(server):
    resp = server.get("/api/plain?tok-out-list")
    assert resp.body == b"ok"
    finished = events_of(server, "tok-out-list", "request_finished")[
        "request_finished"]
    # A list or tuple goes down Apache's filters in one pass.
    assert finished["output_writes"] == 1
    assert finished["output_length"] == 2


def bucket_of(us):
    """The index of mod_wsgi's 65 duration buckets a duration falls in."""
    if us < 1000:
        return 0
    base = 1000
    for octave in range(16):
        if us < 2 * base:
            return octave * 4 + (us - base) * 4 // base
        base *= 2
    return 64


def test_api_request_metrics_window_matches_the_requests_sent(server):
    """On one keep-alive connection, so that in embedded mode one Apache
    child serves every request and holds the whole window."""
    conn = server.http()
    bodies = []

    def call(method, path, body=None):
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, (path, resp.status, data)
        bodies.append(data)
        return data

    try:
        call("GET", "/api/metrics")             # drains: a fresh window
        call("POST", "/api/upload/all", b"a" * 3000)
        call("POST", "/api/upload/all", b"b" * 50000)
        call("GET", "/api/writes/3")
        call("GET", "/api/sleep/60")
        bodies_before = list(bodies)
        metrics = json.loads(call("GET", "/api/metrics"))
    finally:
        conn.close()
    request, process = metrics["request"], metrics["process"]
    # The first /api/metrics finished inside the window; the last one was
    # still running when it was drained.
    count = 5
    assert request["request_count"] == count
    assert request["status_2xx"] == count
    assert request["input_bytes"] == 53000
    assert 2 <= request["input_reads"] <= 53
    # One pass per list response, one per write().
    assert request["output_writes"] == 1 + 1 + 1 + 3 + 1
    assert request["output_bytes"] == sum(len(b) for b in bodies_before)
    assert request["gil_wait_count"] >= request["input_reads"]

    for phase in PHASES:
        buckets = request[phase + "_buckets"]
        low, high = request[phase + "_min_us"], request[phase + "_max_us"]
        assert len(buckets) == 65, phase
        if phase in DAEMON_PHASES and not server.daemon:
            assert request[phase] is None and low is None and high is None
            assert sum(buckets) == 0
            continue
        assert sum(buckets) == count, phase
        assert 0 <= low <= high, phase
        if phase != "gil_wait_time":
            # The mean lies between the extremes (microsecond rounding).
            assert low - 1 <= request[phase] * 1e6 <= high + 1, phase
            assert buckets[bucket_of(high)] >= 1, phase
    # /api/sleep/60 spent at least 60 ms in the application.
    assert request["application_time_max_us"] >= 60000
    assert sum(request["application_time_buckets"][bucket_of(60000):]) >= 1
    assert request["input_read_time"] >= 0

    threads_max = request["request_threads_maximum"]
    for key in ("request_threads_completed", "request_threads_buckets",
                "request_threads_busy_time", "request_threads_cpu_time",
                "request_threads_current_elapsed",
                "request_threads_max_duration"):
        assert len(request[key]) == threads_max, key
    assert sum(request["request_threads_completed"]) == count
    assert request["request_threads_buckets"] == \
        request["request_threads_completed"]
    assert request["request_threads_active"] >= 1
    assert request["request_threads_started"] >= 1
    assert max(request["request_threads_max_duration"]) >= 0.06
    assert sum(request["request_threads_busy_time"]) >= 0.06
    # This request was in flight at the drain.
    assert max(request["request_threads_current_elapsed"]) > 0
    assert 0 < request["capacity_utilization"] <= 1

    threads = process["threads"]
    assert [t["thread_id"] for t in threads] == \
        list(range(1, len(threads) + 1))
    assert sum(t["request_count"] for t in threads) == \
        process["request_count"]
    assert process["request_threads"] == len(threads)


def test_api_apache_handler_honours_loglevel(server):
    mark = server.log_mark()
    for level in ("debug", "info", "warning", "error"):
        assert server.get("/api/log?" + level).status == 200
    server.wait_for_log(r"\[tether:error\].*api-log-error line", since=mark)
    server.wait_for_log(r"\[tether:warn\].*api-log-warning line", since=mark)
    server.wait_for_log(r"\[tether:info\].*api-log-info line", since=mark)
    # LogLevel info: the debug record is filtered by Apache.
    assert "api-log-debug line" not in server.error_log(since=mark)


def test_api_application_output_is_logged_at_level_error(server):
    """print(), sys.stderr and wsgi.errors write at Apache's level error,
    as mod_wsgi does."""
    mark = server.log_mark()
    assert server.get("/api/print/shown").status == 200
    for route in ("stdout", "stderr", "errors"):
        server.wait_for_log(r"\[tether:error\].*api-print-%s-shown" % route,
                            since=mark)


@pytest.mark.parametrize("mode", harness.WSGI_MODES)
def test_api_application_output_hidden_by_loglevel_crit(httpd_env,
                                                        tether_only, mode):
    with httpd_env.server(CONFIG, wsgi_mode=mode, name="api-quiet-" + mode,
                          log_level="info tether:crit",
                          daemon_processes=1) as srv:
        mark = srv.log_mark()
        assert srv.get("/api/print/hidden").status == 200
        # A line logged after the request, at crit: the request's lines
        # would be before it.
        assert srv.get("/api/log?critical").status == 200
        srv.wait_for_log(r"api-log-critical line", since=mark)
        assert "api-print-" not in srv.error_log(since=mark)


def test_api_process_stopping_fires_at_shutdown(httpd_env, tether_only):
    for mode in harness.WSGI_MODES:
        with httpd_env.server(CONFIG, wsgi_mode=mode,
                              name="api-stop-" + mode,
                              daemon_processes=1) as srv:
            assert srv.get("/api/plain?tok-stop").status == 200
            scratch = srv.scratch
            harness.let_children_settle()
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


LOCATION_QUIET_CONFIG = CONFIG + """
<Location "/api/print/quietloc">
    LogLevel info tether:crit
</Location>
"""


@pytest.mark.parametrize("mode", harness.WSGI_MODES)
def test_api_loglevel_of_a_location_applies_in_both_modes(httpd_env,
                                                          tether_only, mode):
    """A LogLevel in <Location> hides the application's lines of the
    requests under it; in daemon mode the Apache side tells the daemon the
    request's level, which the daemon's own configuration cannot know."""
    with httpd_env.server(LOCATION_QUIET_CONFIG, wsgi_mode=mode,
                          name="api-location-level-" + mode,
                          log_level="info", daemon_processes=1) as srv:
        mark = srv.log_mark()
        assert srv.get("/api/print/quietloc").status == 200
        assert srv.get("/api/print/loudloc").status == 200
        for route in ("stdout", "stderr", "errors"):
            srv.wait_for_log(r"\[tether:error\].*api-print-%s-loudloc"
                             % route, since=mark)
        assert "quietloc" not in srv.error_log(since=mark)
