"""Whole applications: one checked by wsgiref.validate, and a real Flask app."""

import json
import re
import urllib.parse

import pytest

CONFIG = """
WSGIScriptAlias /validated @APPS@/validator_app.wsgi
WSGIScriptAlias /flask @APPS@/flask_app.wsgi
"""


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="apps-" + server_variant.name) as srv:
        yield srv


# --- wsgiref.validate --------------------------------------------------------

def test_validator_get_and_post_pass_without_complaint(server):
    mark = server.log_mark()
    conn = server.http()
    try:
        conn.request("GET", "/validated/some/path?x=1")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200,
                                              b"validated GET /some/path")
        conn.request("POST", "/validated/form", body=b"field=value",
                     headers={"Content-Type":
                              "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (
            200, b"received 11 bytes: field=value")
        # A last request on the same connection: the ones before it are
        # finished, iterables released, anything they logged is logged.
        conn.request("GET", "/validated/barrier")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    finally:
        conn.close()
    log = server.error_log(since=mark)
    complaints = [line for line in log.splitlines()
                  if re.search(r"Traceback|AssertionError|Warning|:error\]",
                               line)]
    assert complaints == []


# --- Flask -------------------------------------------------------------------

def test_flask_index_route(server):
    resp = server.get("/flask/")
    assert (resp.status, resp.body) == (200, b"flask index")
    assert resp.header("Content-Type").startswith("text/html")


def test_flask_route_with_variable(server):
    resp = server.get("/flask/hello/apache")
    assert (resp.status, resp.body) == (200, b"hello apache")


def test_flask_post_form(server):
    body = urllib.parse.urlencode({"name": "Ann Lee", "colour": "blue"})
    resp = server.post("/flask/form", body.encode(),
                       headers={"Content-Type":
                                "application/x-www-form-urlencoded"})
    assert (resp.status, resp.body) == (200,
                                        b"form name=Ann Lee colour=blue")


def test_flask_json_response(server):
    resp = server.get("/flask/json")
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    assert resp.json() == {"items": [1, 2, 3], "method": "GET",
                           "script_root": "/flask"}


def test_flask_json_request(server):
    resp = server.post("/flask/echo-json", json.dumps({"a": [1, "b"]}).encode(),
                       headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert resp.json() == {"received": {"a": [1, "b"]}}


def test_flask_unknown_route_is_404(server):
    resp = server.get("/flask/no/such/page")
    assert resp.status == 404
    assert b"Not Found" in resp.body


def test_flask_url_for_builds_urls_under_the_mount_point(server):
    resp = server.get("/flask/where")
    assert resp.body.decode() == "http://127.0.0.1:%d/flask/where" % server.port
