"""Requests that are busy with or without input and output, for the
inactivity-timeout tests.

/pid            the process id
/silent?N       N seconds without reading or writing, then the pid
/stream?N       a chunk every 0.25 s for N seconds, then the pid
"""

import os
import time


def application(environ, start_response):
    what = environ["PATH_INFO"].strip("/")
    seconds = float(environ.get("QUERY_STRING") or "0")
    pid = str(os.getpid()).encode()
    if what == "pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [pid]
    if what == "silent":
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [pid]
    if what == "stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream(seconds, pid)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]


def stream(seconds, pid):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield b"tick\n"
        time.sleep(0.25)
    yield pid
