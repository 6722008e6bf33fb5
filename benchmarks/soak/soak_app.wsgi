"""The application benchmarks/soak.py loads: one path per kind of request."""

import os

SMALL = b"hello soak\n"
BIG = b"x" * (100 * 1024)
HERE = os.path.dirname(os.path.abspath(__file__))
FILE = os.path.join(HERE, "payload.bin")


def _respond(start_response, status, body, ctype="text/plain"):
    start_response(status, [("Content-Type", ctype),
                            ("Content-Length", str(len(body)))])
    return [body]


def _stream():
    for i in range(16):
        yield b"chunk %02d " % i + b"s" * 1000 + b"\n"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/small":
        return _respond(start_response, "200 OK", SMALL)
    if path == "/big":
        return _respond(start_response, "200 OK", BIG)
    if path == "/upload":
        stream = environ["wsgi.input"]
        total = 0
        while True:
            data = stream.read(16384)
            if not data:
                break
            total += len(data)
        return _respond(start_response, "200 OK", b"%d" % total)
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length",
                                   str(os.path.getsize(FILE)))])
        return environ["wsgi.file_wrapper"](open(FILE, "rb"), 65536)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/raise":
        raise RuntimeError("soak: an application error on purpose")
    return _respond(start_response, "404 Not Found", b"no such soak path\n")
