"""Response-side behaviours selected by PATH_INFO, for the response tests.

Side channels: ?marker=<absolute path> names a file the app writes when the
response iterable is closed (JSON: how many items it yielded and whether it
ran out); ?release=<absolute path> names a file the app waits for before it
goes on (so a test can prove it received the first chunk first).
"""
import io
import json
import os
import resource
import sys
import time
from urllib.parse import parse_qs

CHUNK = bytes(range(256)) * 256          # 64 KiB
WAIT_DEADLINE = 30.0


def _query(environ):
    return {k: v[-1] for k, v in
            parse_qs(environ.get("QUERY_STRING", "")).items()}


def _write_marker(path, record):
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)


def _wait_for_file(path):
    deadline = time.monotonic() + WAIT_DEADLINE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Tracked:
    """An iterable over `items` whose close() writes the marker file.

    An item that is an exception instance is raised instead of yielded; an
    item that is a callable is called and its result yielded."""

    def __init__(self, items, marker):
        self.items = iter(items)
        self.marker = marker
        self.yielded = 0
        self.exhausted = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = next(self.items)
        except StopIteration:
            self.exhausted = True
            raise
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item()
        self.yielded += 1
        return item

    def close(self):
        _write_marker(self.marker, {"yielded": self.yielded,
                                    "exhausted": self.exhausted,
                                    "pid": os.getpid()})


def hello(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]


def exc_info_replace(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-First", "1")])
    try:
        raise ValueError("replaced by the error page")
    except ValueError:
        start_response("503 Replaced Status", [("Content-Type", "text/plain"),
                                               ("X-Second", "1")],
                       sys.exc_info())
    return [b"replaced\n"]


def exc_info_after_sent(environ, start_response, q):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial;")
    original = ValueError("raised after the headers were sent")
    outcome = "start_response returned"
    try:
        raise original
    except ValueError:
        try:
            start_response("500 Too Late", [("Content-Type", "text/plain")],
                           sys.exc_info())
        except ValueError as exc:
            outcome = "reraised original" if exc is original else \
                "reraised other ValueError"
        except Exception as exc:
            outcome = "raised %s" % type(exc).__name__
    _write_marker(q.get("marker"), {"outcome": outcome})
    return [b"end\n"]


def write_callable(environ, start_response, q):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"one;")
    write(b"two;")
    return [b"three\n"]


def head(environ, start_response, q):
    body = b"0123456789"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body))),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return [body]


def head_unsized(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked([b"first;", b"second\n"], q.get("marker"))


def close_normal(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked([b"a;", b"b;", b"c\n"], q.get("marker"))


def close_on_error(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked([b"before the error;",
                    RuntimeError("close_on_error iterator failed")],
                   q.get("marker"))


def close_on_disconnect(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    # 16 GiB if nobody stops it: the server must notice the client left.
    return Tracked((CHUNK for _ in range(256 * 1024)), q.get("marker"))


def stream(environ, start_response, q):
    release = q["release"]
    start_response("200 OK", [("Content-Type", "text/plain")])

    def after_release():
        return b"second\n" if _wait_for_file(release) else b"timeout\n"

    return Tracked([b"first\n", after_release], q.get("marker"))


def stream_write(environ, start_response, q):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first\n")
    ok = _wait_for_file(q["release"])
    return [b"second\n" if ok else b"timeout\n"]


def file_wrapper(environ, start_response, q):
    f = open(q["path"], "rb")
    if "offset" in q:
        f.seek(int(q["offset"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 8192)


class RecordingBytesIO(io.BytesIO):
    """A BytesIO that records its read sizes and writes a marker at close."""

    def __init__(self, data, marker):
        super().__init__(data)
        self.marker = marker
        self.read_sizes = []

    def read(self, size=-1):
        self.read_sizes.append(size)
        return super().read(size)

    def close(self):
        if not self.closed:
            _write_marker(self.marker, {"read_sizes": self.read_sizes})
        super().close()


def file_wrapper_filelike(environ, start_response, q):
    size = int(q["size"])
    data = (CHUNK * (size // len(CHUNK) + 1))[:size]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](
        RecordingBytesIO(data, q.get("marker")), int(q.get("block", 4096)))


class SpyFile(io.FileIO):
    """A real file that records every read Python makes of it (read,
    readinto, readall) and writes them to the marker at close.  With
    no_fileno it hides its descriptor, so it can only be read in Python."""

    def __init__(self, path, marker, no_fileno):
        super().__init__(path, "rb")
        self.marker = marker
        self.no_fileno = no_fileno
        self.reads = []

    def fileno(self):
        if self.no_fileno:
            raise io.UnsupportedOperation("fileno hidden by the test")
        return super().fileno()

    def read(self, size=-1):
        self.reads.append(["read", size])
        return super().read(size)

    def readinto(self, buffer):
        self.reads.append(["readinto", len(buffer)])
        return super().readinto(buffer)

    def readall(self):
        self.reads.append(["readall", -1])
        return super().readall()

    def close(self):
        if not self.closed:
            _write_marker(self.marker, {"reads": self.reads})
        super().close()


def file_wrapper_spy(environ, start_response, q):
    f = SpyFile(q["path"], q["marker"], "no_fileno" in q)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 8192)


def latin1_header(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-Latin", "caf\xe9")])
    return [b"latin-1 header\n"]


def set_cookies(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Set-Cookie", "a=1; Path=/"),
                              ("Set-Cookie", "b=2; Path=/")])
    return [b"two cookies\n"]


def no_content(environ, start_response, q):
    start_response("204 No Content", [])
    return []


def custom_reason(environ, start_response, q):
    start_response("299 Custom Reason", [("Content-Type", "text/plain")])
    return [b"custom\n"]


def empty_items(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked([b"", b"a", b"", b"", b"b", b""], q.get("marker"))


def empty_iterable(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


class CloseRaises(Tracked):
    def close(self):
        super().close()
        raise RuntimeError("close() of the iterable failed")


def close_raises(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return CloseRaises([b"body before a failing close\n"], q.get("marker"))


_STASH = {}


def stash(environ, start_response, q):
    """Keeps this request's objects for /use-stale to touch afterwards."""
    _STASH["input"] = environ["wsgi.input"]
    _STASH["errors"] = environ["wsgi.errors"]
    _STASH["start_response"] = start_response
    _STASH["write"] = start_response("200 OK", [("Content-Type",
                                                 "text/plain")])
    return [b"stashed\n"]


def use_stale(environ, start_response, q):
    """Uses the objects of a finished request: each must fail cleanly."""
    attempts = {
        "input.read": lambda: _STASH["input"].read(10),
        "input.readline": lambda: _STASH["input"].readline(),
        "errors.write": lambda: _STASH["errors"].write("stale errors\n"),
        "start_response": lambda: _STASH["start_response"](
            "200 OK", [("Content-Type", "text/plain")]),
        "write": lambda: _STASH["write"](b"stale write"),
    }
    outcome = {"stash": "found" if _STASH else "missing"}
    for name, attempt in attempts.items():
        try:
            attempt()
            outcome[name] = "no error"
        except Exception as exc:
            outcome[name] = type(exc).__name__
    body = json.dumps(outcome).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def big(environ, start_response, q):
    total = int(q["mb"]) * 1024 * 1024
    count = total // len(CHUNK)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Pid", str(os.getpid()))])
    return (CHUNK for _ in range(count))


def big_item(environ, start_response, q):
    """One item of `mb` MiB: in daemon mode a single frame that large."""
    body = bytes(range(256)) * (int(q["mb"]) * 4096)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def rss(environ, start_response, q):
    body = json.dumps({
        "pid": os.getpid(),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {
    "/hello": hello,
    "/exc-info-replace": exc_info_replace,
    "/exc-info-after-sent": exc_info_after_sent,
    "/write": write_callable,
    "/head": head,
    "/head-unsized": head_unsized,
    "/close-normal": close_normal,
    "/close-on-error": close_on_error,
    "/close-on-disconnect": close_on_disconnect,
    "/stream": stream,
    "/stream-write": stream_write,
    "/file-wrapper": file_wrapper,
    "/file-wrapper-filelike": file_wrapper_filelike,
    "/file-wrapper-spy": file_wrapper_spy,
    "/latin1-header": latin1_header,
    "/set-cookies": set_cookies,
    "/no-content": no_content,
    "/custom-reason": custom_reason,
    "/empty-items": empty_items,
    "/empty-iterable": empty_iterable,
    "/close-raises": close_raises,
    "/stash": stash,
    "/use-stale": use_stale,
    "/big": big,
    "/big-item": big_item,
    "/rss": rss,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such response route\n"]
    return route(environ, start_response, _query(environ))
