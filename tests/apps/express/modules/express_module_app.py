"""The module tests/integration/test_express.py serves with tether-express
--application-type module: it is importable only through --python-path.
"""

import json
import os


def application(environ, start_response):
    body = json.dumps({
        "app": "express_module_app",
        "module_file": __file__,
        "pid": os.getpid(),
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
    }).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
