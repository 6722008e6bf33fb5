"""An application whose atexit function never returns: a daemon that
recycles must still give up its slot after shutdown-timeout."""

import atexit
import os
import time


def _hang():
    time.sleep(3600)


atexit.register(_hang)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
