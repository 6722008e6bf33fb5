"""Writes ?token= to the error log through the channel PATH_INFO names."""
import logging
import sys
from urllib.parse import parse_qs

log = logging.getLogger("tether.tests.logging_app")


def application(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    token = q.get("token", ["no-token"])[-1]
    path = environ.get("PATH_INFO", "")
    if path == "/errors":
        environ["wsgi.errors"].write("errors-channel %s\n" % token)
        environ["wsgi.errors"].flush()
    elif path == "/errors-writelines":
        environ["wsgi.errors"].writelines([
            "writelines-channel %s one\n" % token,
            "writelines-channel %s two\n" % token])
    elif path == "/errors-partial":
        # No newline: the line must still reach the log by the request's end.
        environ["wsgi.errors"].write("partial-channel %s" % token)
    elif path == "/print":
        print("print-channel %s" % token)
        sys.stdout.flush()
    elif path == "/stderr":
        print("stderr-channel %s" % token, file=sys.stderr)
    elif path == "/logging":
        log.warning("logging-channel %s", token)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such logging route\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged\n"]
