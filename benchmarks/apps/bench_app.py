"""The WSGI applications the benchmark serves, one callable per workload.

Every server loads this one file and is pointed at one callable: Apache
through `WSGIScriptAlias` + `WSGICallableObject`, gunicorn as
`bench_app:<name>`.  Response bodies are built once at import, so a request
costs only what the server does with them.

The harness copies this file to <work dir>/apps/; `file_wrapper` sends
<work dir>/htdocs/file-10m.bin, the file the static server serves too.
"""

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(os.path.dirname(HERE), "htdocs")

HELLO = b"Hello world!\n"                       # 13 bytes
BODY_100K = b"x" * (100 * 1024)
BODY_1M = b"x" * (1024 * 1024)
FILE_10M = os.path.join(DATA_DIR, "file-10m.bin")
UPLOAD_SIZE = 10 * 1024 * 1024
READ_BLOCK = 64 * 1024


def _respond(start_response, body, content_type="application/octet-stream"):
    start_response("200 OK", [("Content-Type", content_type),
                              ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    return _respond(start_response, HELLO, "text/plain")


def bytes_100k(environ, start_response):
    return _respond(start_response, BODY_100K)


def bytes_1m(environ, start_response):
    return _respond(start_response, BODY_1M)


def file_wrapper(environ, start_response):
    f = open(FILE_10M, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, READ_BLOCK)


def upload(environ, start_response):
    """Reads the whole request body; 200 with its size when it is the 10 MiB
    the load generator sends, 400 otherwise (so wrk counts it as an error)."""
    stream = environ["wsgi.input"]
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    total = 0
    while remaining > 0:
        data = stream.read(min(READ_BLOCK, remaining))
        if not data:
            break
        total += len(data)
        remaining -= len(data)
    body = b"%d\n" % total
    status = "200 OK" if total == UPLOAD_SIZE else "400 Bad Request"
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


def sleep_10ms(environ, start_response):
    time.sleep(0.010)
    return _respond(start_response, HELLO, "text/plain")
