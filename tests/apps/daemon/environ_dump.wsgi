"""Returns the whole environ as JSON (str values; others as repr)."""

import json


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    out = {}
    for key, value in environ.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, (bool, int, tuple)):
            out[key] = repr(value)
        else:
            out[key] = "<%s>" % type(value).__name__
    out["_body_length"] = str(len(body))
    data = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
