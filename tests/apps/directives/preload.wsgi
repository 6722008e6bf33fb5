"""Preloaded by WSGIImportScript: records that it ran, before any request."""

import os
import sys
import time

LOADED_AT = time.time()
print("tether-test preload.wsgi executed in pid %d" % os.getpid(), file=sys.stderr)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %r" % (os.getpid(), LOADED_AT)]
