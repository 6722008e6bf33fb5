"""The example WSGI application of apache-conf/examples/site-embedded.conf.in.

GET / answers "Hello from Tether" on its first line, then where the request
landed: SCRIPT_NAME, PATH_INFO and the Python that ran it.
"""

import sys


def application(environ, start_response):
    lines = [
        "Hello from Tether",
        "SCRIPT_NAME: %s" % environ.get("SCRIPT_NAME", ""),
        "PATH_INFO: %s" % environ.get("PATH_INFO", ""),
        "Python: %s (%s)" % (sys.version.split()[0], sys.prefix),
    ]
    body = ("\n".join(lines) + "\n").encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
