"""Returns its own source through wsgi.file_wrapper."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](open(__file__, "rb"), 4096)
