"""The WSGI script tests/integration/test_express.py serves.

Both callables answer JSON describing the request and the process that
served it: `application` is the default, `handler` is for
--callable-object.  The --reload-on-changes test rewrites VERSION.  A path
/sleep/SECONDS sleeps that long before answering (request timeouts).
"""

import json
import os
import time

VERSION = 1


def _answer(environ, start_response, callable_name):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/sleep/"):
        time.sleep(float(path[len("/sleep/"):]))
    body = json.dumps({
        "app": "express_app",
        "callable": callable_name,
        "version": VERSION,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "script_name": environ.get("SCRIPT_NAME", ""),
        "path_info": environ.get("PATH_INFO", ""),
        "greeting": environ.get("TETHER_GREETING"),
        "process_group": environ.get("mod_wsgi.process_group"),
        "application_group": environ.get("mod_wsgi.application_group"),
    }).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    return _answer(environ, start_response, "application")


def handler(environ, start_response):
    return _answer(environ, start_response, "handler")
