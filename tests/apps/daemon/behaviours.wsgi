"""Each path makes the daemon misbehave in one way, for the failure tests."""

import os
import signal
import time

HELD = []


def application(environ, start_response):
    what = environ["PATH_INFO"].strip("/")
    if what == "pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "die-before-headers":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "die-mid-body":
        return die_mid_body(environ, start_response)
    if what == "die-mid-body-cl":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", "100000")])
        return die_after_first(b"x" * 1000)
    if what == "grow":
        # Held by the module: the process stays this big.
        HELD.append(b"\x01" * int(environ.get("QUERY_STRING") or "0"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "hold-gil":
        # Catastrophic backtracking: the regex engine runs in C for a very
        # long time without releasing the GIL.
        import re
        re.match(r"(a+)+$", "a" * 64 + "b")
    if what == "raise":
        raise RuntimeError("daemon boom")
    if what == "big-header":
        start_response("200 OK", [("X-Big", "y" * 40000)])
        return [b"too big"]
    if what == "sleep":
        seconds = float(environ.get("QUERY_STRING") or "5")
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept %r" % seconds]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such behaviour"]


def die_after_first(first):
    yield first
    os.kill(os.getpid(), signal.SIGKILL)
    yield b"never"


def die_mid_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return die_after_first(b"first chunk\n")
