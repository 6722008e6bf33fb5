"""The WSGI script behind `tether-express --health-url`: a load balancer's
health check.

It runs in the application's process group (a daemon process, or one of
Apache's children in embedded mode) but never calls the application, so
a 200 says that Apache accepts connections and that a process of the
group is up and has a free thread, without the cost or side effects of a
real page.
"""

BODY = b"OK\n"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(BODY))),
                              ("Cache-Control", "no-store")])
    if environ.get("REQUEST_METHOD") == "HEAD":
        return [b""]
    return [BODY]
