"""Imports modules that only WSGIPythonPath (and its .pth files) provide."""

import json


def application(environ, start_response):
    import tether_pp_direct
    import tether_pp_via_pth
    body = json.dumps([tether_pp_direct.NAME, tether_pp_via_pth.NAME]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
