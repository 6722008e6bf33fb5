"""Leaves a file in the server's scratch directory from an atexit function
and from a shutdown subscriber, to show which ran when the process exited
(WSGIDestroyInterpreter)."""

import atexit
import os

import mod_wsgi

SCRATCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scratch")


def _touch(what):
    with open(os.path.join(SCRATCH, "%s-%d" % (what, os.getpid())), "w"):
        pass


atexit.register(_touch, "atexit")


@mod_wsgi.subscribe_shutdown
def _stopping(name, **event):
    _touch("shutdown")


def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
