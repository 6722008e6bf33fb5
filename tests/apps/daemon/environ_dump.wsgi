"""Returns the whole environ as JSON (str values; others as repr), with the
serving process's pid and a digest of the request body.

With a TETHER_DUMP_DIR variable (SetEnv) and an X-Tether-Dump: NAME
header, the same JSON also goes to TETHER_DUMP_DIR/NAME-MODE.json (MODE
from the X-Tether-Mode header): the environ of a HEAD request, whose body
never reaches the client."""

import hashlib
import json
import os


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
    out["_body_sha256"] = hashlib.sha256(body).hexdigest()
    out["_pid"] = str(os.getpid())
    data = json.dumps(out, sort_keys=True).encode()
    dump_dir = environ.get("TETHER_DUMP_DIR")
    name = environ.get("HTTP_X_TETHER_DUMP")
    if dump_dir and name:
        path = os.path.join(dump_dir, "%s-%s.json" % (
            os.path.basename(name),
            os.path.basename(environ.get("HTTP_X_TETHER_MODE", "none"))))
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", 0o644)
        os.rename(path + ".tmp", path)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
