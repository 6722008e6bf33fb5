"""Returns the WSGI environ as JSON, for the environ tests.

Values JSON can hold are given as they are (tuples as lists); any other value
as its repr.  "types" names the type of every value, and "checks" reports on
the objects a test cannot see through JSON.
"""
import json


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple) and all(isinstance(v, (str, int))
                                        for v in value):
        return list(value)
    return repr(value)


def _has_methods(obj, names):
    return all(callable(getattr(obj, name, None)) for name in names)


def application(environ, start_response):
    checks = {
        "environ_is_dict": type(environ) is dict,
        "input_methods": _has_methods(environ.get("wsgi.input"),
                                      ("read", "readline", "readlines",
                                       "__iter__")),
        "errors_methods": _has_methods(environ.get("wsgi.errors"),
                                       ("write", "writelines", "flush")),
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
        "keys_are_str": all(type(k) is str for k in environ),
    }
    body = json.dumps({
        "environ": {key: _plain(value) for key, value in environ.items()},
        "types": {key: type(value).__name__ for key, value in environ.items()},
        "checks": checks,
    }, sort_keys=True).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
