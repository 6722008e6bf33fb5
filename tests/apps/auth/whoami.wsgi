"""Reports who was served, where and by which callable, as JSON."""

import json
import os


def _report(environ, start_response, callable_name):
    keys = ("REMOTE_USER", "AUTH_TYPE", "REQUEST_URI", "SCRIPT_NAME",
            "PATH_INFO", "mod_wsgi.process_group",
            "mod_wsgi.application_group", "mod_wsgi.handler_script",
            "HTTP_AUTHORIZATION")
    data = {k: environ.get(k) for k in keys}
    data["pid"] = os.getpid()
    data["callable"] = callable_name
    capsule = environ.get("apache.request_rec")
    data["request_rec"] = type(capsule).__name__ if capsule is not None \
        else None
    body = json.dumps(data).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    return _report(environ, start_response, "application")


def alt_app(environ, start_response):
    return _report(environ, start_response, "alt_app")


def handle_request(environ, start_response):
    return _report(environ, start_response, "handle_request")
