"""A WSGIDispatchScript: routes by the request URI."""

DAEMON = "tether-auth"


def process_group(environ):
    if environ["REQUEST_URI"].startswith("/dispatch/daemon"):
        return DAEMON
    if environ["REQUEST_URI"].startswith("/dispatch/boom"):
        raise RuntimeError("process_group blew up on purpose")
    return None


def application_group(environ):
    if environ["REQUEST_URI"].startswith("/dispatch/named"):
        return "chosen-by-dispatch"
    if environ["REQUEST_URI"].startswith("/dispatch/daemon"):
        return "%{GLOBAL}"
    if environ["REQUEST_URI"].startswith("/dispatch/bad"):
        return 7
    return None


def callable_object(environ):
    if environ["REQUEST_URI"].startswith("/dispatch/alt"):
        return "alt_app"
    return None
