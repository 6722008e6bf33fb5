"""Reads wsgi.input in the way PATH_INFO names and reports what it got.

Bodies are returned latin-1 decoded so any byte survives the JSON.  Sizes
come from the query string (?n=, ?size=, ?hint=); ?started=<path> names a
file the app writes (its pid) just before it reads.
"""
import hashlib
import json
import os
import resource
from urllib.parse import parse_qs

BLOCK = 64 * 1024


def _text(data):
    return data.decode("latin-1")


def _maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def read_n(stream, q):
    n = int(q["n"])
    pieces = []
    while True:
        piece = stream.read(n)
        if not piece:
            break
        pieces.append(piece)
    return {"pieces": [_text(p) for p in pieces]}


def read_all(stream, q):
    if "n" in q:
        data = stream.read(int(q["n"]))
    else:
        data = stream.read()
    return {"data": _text(data), "after": _text(stream.read(10))}


def read_then_all(stream, q):
    first = stream.read(int(q["n"]))
    rest = stream.read()
    return {"first": _text(first), "rest": _text(rest)}


def readline(stream, q):
    size = int(q["size"]) if "size" in q else None
    lines = []
    while True:
        line = stream.readline() if size is None else stream.readline(size)
        if not line:
            break
        lines.append(line)
    return {"lines": [_text(line) for line in lines]}


def readlines(stream, q):
    if "hint" in q:
        lines = stream.readlines(int(q["hint"]))
    else:
        lines = stream.readlines()
    return {"lines": [_text(line) for line in lines],
            "rest": _text(stream.read())}


def iterate(stream, q):
    return {"lines": [_text(line) for line in stream]}


def digest(stream, q):
    before = _maxrss_kb()
    sha = hashlib.sha256()
    count = 0
    reads = 0
    while True:
        block = stream.read(BLOCK)
        if not block:
            break
        if len(block) > BLOCK:
            return {"error": "read(%d) returned %d bytes" % (BLOCK, len(block))}
        reads += 1
        count += len(block)
        sha.update(block)
    return {"count": count, "sha256": sha.hexdigest(), "reads": reads,
            "pid": os.getpid(), "maxrss_before_kb": before,
            "maxrss_after_kb": _maxrss_kb()}


def mixed(stream, q):
    parts = [stream.readline(), stream.read(3), stream.readline(5),
             stream.readline(), stream.read()]
    return {"parts": [_text(p) for p in parts]}


def read_error(stream, q):
    """What read() raised; also written to ?record=<path>, for tests whose
    client never sees the response."""
    try:
        result = {"data_length": len(stream.read())}
    except Exception as exc:
        result = {"error": type(exc).__name__, "message": str(exc),
                  "is_oserror": isinstance(exc, OSError)}
    if "record" in q:
        with open(q["record"] + ".tmp", "w") as f:
            json.dump(result, f)
        os.rename(q["record"] + ".tmp", q["record"])
    return result


def ignore(stream, q):
    return {"ignored": True}


ROUTES = {
    "/read": read_n,
    "/read-all": read_all,
    "/read-then-all": read_then_all,
    "/readline": readline,
    "/readlines": readlines,
    "/iter": iterate,
    "/digest": digest,
    "/mixed": mixed,
    "/read-error": read_error,
    "/ignore": ignore,
}


def echo_lines(environ, start_response):
    """Answers each line of the body as soon as it has read it."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    stream = environ["wsgi.input"]
    while True:
        line = stream.readline()
        if not line:
            break
        yield line


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/echo-lines":
        return echo_lines(environ, start_response)
    query = {k: v[-1] for k, v in
             parse_qs(environ.get("QUERY_STRING", "")).items()}
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such input route\n"]
    if "started" in query:
        # Tells a waiting test that the app is about to read wsgi.input.
        with open(query["started"], "w") as f:
            f.write("%d\n" % os.getpid())
    result = route(environ["wsgi.input"], query)
    result["content_length"] = environ.get("CONTENT_LENGTH")
    result["transfer_encoding"] = environ.get("HTTP_TRANSFER_ENCODING")
    body = json.dumps(result).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
