"""Exercises Tether's in-process API (the "mod_wsgi" module).

Events are appended, one JSON line each, to scratch/events.jsonl (the
server's scratch directory, beside this file's apps/ directory), so a test
can read the events of any process.  process_stopping is written to
scratch/stopping-<pid>.json.
"""

import json
import logging
import os
import sys
import threading
import time

import _tether
import mod_wsgi

SCRATCH = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scratch")
_lock = threading.Lock()


def _record(entry):
    line = json.dumps(entry, sort_keys=True, default=repr) + "\n"
    with _lock:
        with open(os.path.join(SCRATCH, "events.jsonl"), "a") as f:
            f.write(line)


def _wrapped(app):
    def wrapper(environ, start_response):
        body = app(environ, start_response)
        return [b"wrapped:"] + list(body)
    return wrapper


@mod_wsgi.subscribe_events
def on_event(name, **event):
    if name == "process_stopping":
        return None
    data = event.get("request_data")
    token = data.get("token") if data is not None else None
    if name == "request_started":
        environ = event["request_environ"]
        token = environ.get("QUERY_STRING", "")
        data["token"] = token
        data["seen"] = ["request_started"]
    elif data is not None:
        data.setdefault("seen", []).append(name)
    entry = {"event": name, "token": token, "keys": sorted(event),
             "pid": os.getpid()}
    if name == "request_finished":
        for key in ("status", "application_time", "input_reads",
                    "input_length", "input_time", "output_writes",
                    "output_length", "output_time", "gil_wait_time",
                    "gil_wait_count"):
            entry[key] = event[key]
        entry["seen"] = list(data.get("seen", []))
    if name == "response_started":
        entry["response_status"] = event["response_status"]
    if name == "request_exception":
        entry["exception"] = event["exception_info"][0].__name__
    _record(entry)
    if (name == "request_started"
            and event["request_environ"].get("PATH_INFO") == "/wrapped"):
        return {"application_object": _wrapped(event["application_object"])}
    return None


@mod_wsgi.subscribe_shutdown
def on_shutdown(name, **event):
    path = os.path.join(SCRATCH, "stopping-%d.json" % os.getpid())
    with open(path, "w") as f:
        json.dump({"event": name, "reason": event.get("shutdown_reason")}, f)


mod_wsgi.start_recording_metrics()
_log = logging.getLogger("tether-api-test")
_log.propagate = False
_log.setLevel(logging.DEBUG)
_log.addHandler(mod_wsgi.ApacheHandler())


def _json(start_response, value, status="200 OK"):
    body = json.dumps(value, sort_keys=True, default=repr).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/attributes":
        import tether
        return _json(start_response, {
            "version": mod_wsgi.version,
            "tether_version": _tether.version,
            "process_group": mod_wsgi.process_group,
            "application_group": mod_wsgi.application_group,
            "maximum_processes": mod_wsgi.maximum_processes,
            "threads_per_process": mod_wsgi.threads_per_process,
            "environ_version": environ["mod_wsgi.version"],
            "tether_is_api": getattr(tether, "subscribe_events", None)
            is _tether.subscribe_events,
            "pid": os.getpid(),
        })
    if path == "/request-data":
        data = mod_wsgi.request_data()
        data["from_app"] = True
        return _json(start_response, {
            "same": mod_wsgi.request_data() is data,
            "token": data.get("token"),
            "seen": data.get("seen"),
        })
    if path == "/outside":
        result = {}

        def other_thread():
            try:
                mod_wsgi.request_data()
                result["error"] = None
            except RuntimeError as exc:
                result["error"] = str(exc)
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        return _json(start_response, result)
    if path == "/raise":
        raise ValueError("raised on purpose")
    if path == "/metrics":
        return _json(start_response, {
            "request": mod_wsgi.request_metrics(),
            "process": mod_wsgi.process_metrics(),
        })
    if path == "/server-metrics":
        return _json(start_response, {"server": mod_wsgi.server_metrics()})
    if path == "/log":
        level = environ.get("QUERY_STRING", "info")
        getattr(_log, level)("api-log-%s line", level)
        return _json(start_response, {"logged": level})
    if path.startswith("/upload/"):
        # /upload/all reads the whole body in 1000-byte reads; /upload/N
        # reads N bytes only.
        stream = environ["wsgi.input"]
        if path == "/upload/all":
            got = 0
            while True:
                chunk = stream.read(1000)
                if not chunk:
                    break
                got += len(chunk)
        else:
            got = len(stream.read(int(path.split("/")[2])))
        return _json(start_response, {"read": got})
    if path.startswith("/writes/"):
        # /writes/N: N calls of write() of 100 bytes each.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for _ in range(int(path.split("/")[2])):
            write(b"w" * 100)
        return []
    if path.startswith("/yields/"):
        # /yields/N: a generator of N items of 100 bytes each.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"y" * 100 for _ in range(int(path.split("/")[2])))
    if path.startswith("/print/") or path.startswith("/quiet/print/"):
        # Application output by its three routes, tagged with the last
        # part of the path.
        tag = path.rsplit("/", 1)[1]
        print("api-print-stdout-%s" % tag)
        sys.stderr.write("api-print-stderr-%s\n" % tag)
        sys.stderr.flush()
        environ["wsgi.errors"].write("api-print-errors-%s\n" % tag)
        environ["wsgi.errors"].flush()
        return _json(start_response, {"printed": tag})
    if path.startswith("/sleep/"):
        # /sleep/MS: at least MS milliseconds in the application.
        time.sleep(int(path.split("/")[2]) / 1000.0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
