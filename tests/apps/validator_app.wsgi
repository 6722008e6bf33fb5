"""A small application checked by wsgiref.validate on every request.

The validator asserts that the server keeps to PEP 3333 (environ types, the
input and errors streams, start_response, closing the iterable); a breach
raises AssertionError or warns, and either ends up in the error log.
"""
from wsgiref.validate import validator


def simple_app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        body = b"received %d bytes: " % len(data) + data
    else:
        path = environ.get("PATH_INFO", "")
        body = b"validated GET " + path.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(simple_app)
