"""Answers /.../404 with its own 404 page, anything else with 200."""


def application(environ, start_response):
    if environ.get("PATH_INFO", "").endswith("/404"):
        body = b"the application's own 404 page"
        status = "404 Not Found"
    else:
        body = b"fine"
        status = "200 OK"
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body))),
                            ("X-From-App", "yes")])
    return [body]
