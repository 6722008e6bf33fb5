"""Probes the WSGIRestrict* guards: each path tries one restricted thing."""

import json
import signal
import sys


def application(environ, start_response):
    what = environ["PATH_INFO"].strip("/")
    result = {"what": what}
    try:
        if what == "stdin":
            result["value"] = sys.stdin.read()
        elif what == "stdout":
            print("hello from print to stdout")
            sys.stdout.flush()
            result["value"] = "printed"
        elif what == "signal":
            previous = signal.signal(signal.SIGUSR2, lambda *a: None)
            result["value"] = repr(previous)
            result["handler_now"] = repr(signal.getsignal(signal.SIGUSR2))
        result["ok"] = True
    except Exception as exc:  # the restriction raised: report it
        result["ok"] = False
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
