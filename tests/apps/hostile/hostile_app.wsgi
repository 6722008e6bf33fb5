"""The application behind the hostile-input tests, selected by PATH_INFO.

Side channels: ?marker=<absolute path> names a file the app writes (JSON)
when it is done with a request: when its response iterable is closed, or
when it finished reading the body.  A test reads it to learn what the app
saw even when the client never gets the response.
"""
import json
import os
import time
import uuid
from urllib.parse import parse_qs

CHUNK = b"h" * 65536
BARRIER_DEADLINE = 3.0


def _query(environ):
    return {k: v[-1] for k, v in
            parse_qs(environ.get("QUERY_STRING", "")).items()}


def _write_marker(path, record):
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)


def _json(start_response, record, status="200 OK"):
    body = json.dumps(record).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _read_body(environ):
    """Reads wsgi.input to its end: (bytes read, error text or None)."""
    stream = environ["wsgi.input"]
    total = 0
    try:
        while True:
            block = stream.read(8192)
            if not block:
                break
            total += len(block)
    except Exception as exc:            # what the tests want to see
        return total, "%s: %s" % (type(exc).__name__, exc)
    return total, None


def hello(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "6")])
    return [b"hello\n"]


def environ_view(environ, start_response, q):
    """The str values of the environ; ?count=1 gives only the HTTP_* count
    and the keys that do not look like X-Many-N headers."""
    strings = {k: v for k, v in environ.items() if isinstance(v, str)}
    if q.get("count"):
        http = [k for k in strings if k.startswith("HTTP_")]
        strings = {"http_count": len(http),
                   "other_http": sorted(k for k in http
                                        if not k.startswith("HTTP_X_MANY_"))}
    return _json(start_response, strings)


def read(environ, start_response, q):
    """Reads the whole body, then reports it (and writes the marker).
    ?started= names a file written before the first read."""
    _write_marker(q.get("started"), {"started": True})
    total, error = _read_body(environ)
    record = {"length": total, "error": error,
              "content_length": environ.get("CONTENT_LENGTH", "")}
    _write_marker(q.get("marker"), record)
    return _json(start_response, record)


class Closing:
    """A response iterable whose close() writes the marker.

    Iteration writes the `started` marker first; with read_first, it then
    reads the body (the client may leave meanwhile); then it yields `items`
    chunks."""

    def __init__(self, environ, marker, items, read_first, started):
        self.environ = environ
        self.started = started
        self.marker = marker
        self.items = items
        self.read_first = read_first
        self.read = None
        self.yielded = 0

    def __iter__(self):
        _write_marker(self.started, {"started": True})
        if self.read_first:
            self.read = _read_body(self.environ)
        for _ in range(self.items):
            self.yielded += 1
            yield CHUNK

    def close(self):
        _write_marker(self.marker, {
            "closed": True, "yielded": self.yielded,
            "read": self.read, "items": self.items})


def closing(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Closing(environ, q.get("marker"), int(q.get("items", "1")),
                   bool(q.get("read")), q.get("started"))


def barrier(environ, start_response, q):
    """Waits until ?n= requests with the same ?dir= are in the app at once:
    proves that many threads are free.  Answers {"met": bool}."""
    directory, n = q["dir"], int(q["n"])
    os.makedirs(directory, exist_ok=True)
    me = os.path.join(directory, uuid.uuid4().hex)
    open(me, "w").close()
    deadline = time.monotonic() + BARRIER_DEADLINE
    met = False
    while time.monotonic() < deadline:
        if len(os.listdir(directory)) >= n:
            met = True
            break
        time.sleep(0.02)
    # Stay a little so that the others see us too.
    time.sleep(0.2)
    return _json(start_response, {"met": met})


def pids(environ, start_response, q):
    return _json(start_response, {"pid": os.getpid()})


ROUTES = {
    "/hello": hello,
    "/environ": environ_view,
    "/read": read,
    "/closing": closing,
    "/barrier": barrier,
    "/pid": pids,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        return _json(start_response,
                     {"path_info": environ.get("PATH_INFO", ""),
                      "request_uri": environ.get("REQUEST_URI", "")},
                     "404 Not Found")
    return route(environ, start_response, _query(environ))
