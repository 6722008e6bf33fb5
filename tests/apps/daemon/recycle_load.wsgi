"""Requests for the recycling-under-load tests.  Every 200 answer but /pid's
carries the same BODY (in several pieces, with a Content-Length) and names
the serving process in X-Pid, so a client can tell a complete answer from a
cut one and which process gave it.

/ok                 BODY at once
/burn?MS            MS milliseconds of CPU time burnt, then BODY
/grow?BYTES         BYTES more memory kept by the process, then BODY
/pid                the process id
/slow?N&MARK        writes MARK (a path) once it runs, sleeps N seconds
                    without answering, then BODY
/slowstream?N&MARK  the head and a first piece, writes MARK, a piece every
                    0.25 s for N seconds, then the rest
"""

import os
import time

PIECE = bytes(range(256)) * 32                  # 8 KiB
BODY = PIECE * 4                                # 32 KiB
HELD = []


def _head(start_response, length=len(BODY)):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(length)),
                              ("X-Pid", str(os.getpid()))])


def _mark(path):
    if path:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


def _burn(seconds):
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        for i in range(2000):
            n += i * i
    return n


def application(environ, start_response):
    what = environ["PATH_INFO"].strip("/")
    query = environ.get("QUERY_STRING", "")
    arg, _, mark = query.partition("&")
    if what == "pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "ok":
        _head(start_response)
        return [PIECE, PIECE, PIECE, PIECE]
    if what == "burn":
        _burn(int(arg or "10") / 1000.0)
        _head(start_response)
        return [PIECE, PIECE, PIECE, PIECE]
    if what == "grow":
        # b"\x01" * n writes every page: the resident set grows by n.
        HELD.append(b"\x01" * int(arg or "0"))
        _head(start_response)
        return [PIECE, PIECE, PIECE, PIECE]
    if what == "slow":
        _mark(mark)
        time.sleep(float(arg or "5"))
        _head(start_response)
        return [BODY]
    if what == "slowstream":
        _head(start_response, len(PIECE) * (1 + 4 * int(float(arg or "5"))))
        return _slowstream(float(arg or "5"), mark)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]


def _slowstream(seconds, mark):
    yield PIECE
    _mark(mark)
    for _ in range(4 * int(seconds)):
        time.sleep(0.25)
        yield PIECE
