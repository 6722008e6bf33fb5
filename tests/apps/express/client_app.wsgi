"""Answers JSON saying what the application learnt about the client and the
connection: scheme, address, protocol, TLS.  Served by the HTTPS, HTTP/2
and scale-out tests; /slow/SECONDS sleeps first; /instance names the
server through $TETHER_INSTANCE (set with --setenv)."""

import json
import os
import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/slow/"):
        time.sleep(float(path[len("/slow/"):]))
    body = json.dumps({
        "url_scheme": environ["wsgi.url_scheme"],
        "https": environ.get("HTTPS"),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "host": environ.get("HTTP_HOST"),
        "server_port": environ.get("SERVER_PORT"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "ssl_protocol": environ.get("SSL_PROTOCOL"),
        "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
        "instance": environ.get("TETHER_INSTANCE"),
        "pid": os.getpid(),
        "path_info": path,
    }).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
