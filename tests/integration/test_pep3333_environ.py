"""The WSGI environ as a real Apache builds it (PEP 3333, mod_wsgi's values)."""

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import decode_chunked

CONFIG = """
WSGIScriptAlias /app @APPS@/environ_app.wsgi
WSGIScriptAlias /auth @APPS@/environ_app.wsgi
<Location /auth>
    WSGIPassAuthorization On
</Location>
WSGIScriptAlias / @APPS@/environ_app.wsgi
"""


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    with httpd_env.server(CONFIG, mpm=server_variant.mpm,
                          wsgi_mode=server_variant.wsgi_mode,
                          name="environ-" + server_variant.name) as srv:
        yield srv


@pytest.fixture
def reference(httpd_env):
    """True when the module under test is mod_wsgi (a reference run)."""
    return httpd_env.reference


def fetch(server, path, headers=None):
    resp = server.get(path, headers=headers)
    assert resp.status == 200, resp
    return resp.json()


def environ_of(server, path, headers=None):
    return fetch(server, path, headers)["environ"]


def raw_environ(server, method, path, headers=(), body=b"",
                version="HTTP/1.1"):
    resp = server.raw_request(method, path, headers=headers, body=body,
                              version=version)
    assert resp.status == 200, resp
    body = resp.body
    if resp.header("Transfer-Encoding") == "chunked":
        body, complete = decode_chunked(body)
        assert complete, resp
    return json.loads(body)["environ"]


# --- SCRIPT_NAME / PATH_INFO -------------------------------------------------

def test_environ_script_name_and_path_info_split_at_alias(server):
    env = environ_of(server, "/app/x/y")
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/x/y"


def test_environ_alias_itself_has_empty_path_info(server):
    env = environ_of(server, "/app")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "")


def test_environ_alias_with_trailing_slash_has_slash_path_info(server):
    env = environ_of(server, "/app/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/")


def test_environ_mounted_at_root_has_empty_script_name(server):
    env = environ_of(server, "/x/y")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/x/y")
    env = environ_of(server, "/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/")


def test_environ_repeated_slashes_collapsed_in_script_name_and_path_info(
        server):
    env = environ_of(server, "//app//x///y")
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/x/y"
    assert env["REQUEST_URI"] == "//app//x///y"


def test_environ_path_info_decoded_request_uri_raw(server):
    env = environ_of(server, "/app/a%20b/%7Euser?q=%41&r=2")
    assert env["PATH_INFO"] == "/a b/~user"
    assert env["REQUEST_URI"] == "/app/a%20b/%7Euser?q=%41&r=2"
    assert env["QUERY_STRING"] == "q=%41&r=2"


def test_environ_path_info_bytes_decoded_as_latin1(server):
    # PEP 3333: native strings hold the raw bytes, decoded as latin-1; a
    # UTF-8 "é" (%C3%A9) arrives as the two characters "\xc3\xa9".
    env = environ_of(server, "/app/caf%C3%A9")
    assert env["PATH_INFO"] == "/caf\xc3\xa9"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\xe9"


def test_environ_query_string_present_and_empty_without_query(server):
    env = environ_of(server, "/app/x")
    assert env["QUERY_STRING"] == ""


# --- server and client -------------------------------------------------------

def test_environ_server_name_port_and_protocol(server):
    env = environ_of(server, "/app/x")
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REQUEST_METHOD"] == "GET"


def test_environ_server_software_addr_and_gateway_interface(server):
    env = environ_of(server, "/app/x")
    assert re.match(r"Apache(/2\.4\.\d+)?( |$)", env["SERVER_SOFTWARE"]), \
        env["SERVER_SOFTWARE"]
    assert env["SERVER_ADDR"] == "127.0.0.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"


def test_environ_script_filename_and_path_translated(server):
    env = environ_of(server, "/app/x/y")
    assert env["SCRIPT_FILENAME"] == os.path.join(server.apps,
                                                  "environ_app.wsgi")
    # DocumentRoot + PATH_INFO, as Apache's CGI variables give it.
    assert env["PATH_TRANSLATED"] == os.path.join(server.root, "htdocs") \
        + "/x/y"
    # No PATH_INFO, no PATH_TRANSLATED.
    env = environ_of(server, "/app")
    assert env["SCRIPT_FILENAME"] == os.path.join(server.apps,
                                                  "environ_app.wsgi")
    assert "PATH_TRANSLATED" not in env


@pytest.mark.parametrize("path,script_name", [("/app/x", "/app"),
                                              ("/auth/x", "/auth"),
                                              ("/x", "")])
def test_environ_mod_wsgi_and_tether_script_name_equal_script_name(
        server, reference, path, script_name):
    env = environ_of(server, path)
    assert env["SCRIPT_NAME"] == script_name
    assert env["mod_wsgi.script_name"] == script_name
    if not reference:
        assert env["tether.script_name"] == script_name


def test_environ_server_protocol_http10(server):
    env = raw_environ(server, "GET", "/app/x", version="HTTP/1.0")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_environ_remote_addr_and_port_are_the_clients(server):
    conn = server.http()
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request("GET", "/app/x")
        resp = conn.getresponse()
        env = json.loads(resp.read())["environ"]
    finally:
        conn.close()
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)


def test_environ_plain_http_has_no_https_and_http_url_scheme(server):
    env = environ_of(server, "/app/x")
    assert "HTTPS" not in env
    assert env["wsgi.url_scheme"] == "http"


# --- request headers ---------------------------------------------------------

def test_environ_content_type_and_length_for_post(server):
    resp = server.post("/app/x", b"a=1&b=22222222",
                       headers={"Content-Type":
                                "application/x-www-form-urlencoded"})
    assert resp.status == 200, resp
    env = resp.json()["environ"]
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "14"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_environ_header_names_with_underscores_dropped(server):
    env = raw_environ(server, "GET", "/app/x",
                      headers=[("X_Foo", "1"), ("X-Foo", "2")])
    assert env["HTTP_X_FOO"] == "2"


def test_environ_non_ascii_header_value_decoded_as_latin1(server):
    resp = server.raw(b"GET /app/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"X-Latin: caf\xe9\r\nConnection: close\r\n\r\n")
    assert resp.status == 200, resp
    body = resp.body
    if resp.header("Transfer-Encoding") == "chunked":
        body, _ = decode_chunked(body)
    assert json.loads(body)["environ"]["HTTP_X_LATIN"] == "caf\xe9"


def test_environ_repeated_request_headers_joined(server):
    env = raw_environ(server, "GET", "/app/x",
                      headers=[("X-Multi", "a"), ("X-Multi", "b")])
    assert env["HTTP_X_MULTI"] == "a, b"


def test_environ_authorization_hidden_by_default(server):
    env = environ_of(server, "/app/x",
                     headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert "HTTP_AUTHORIZATION" not in env


def test_environ_authorization_passed_with_wsgi_pass_authorization(server):
    env = environ_of(server, "/auth/x",
                     headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert env["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"


@pytest.mark.parametrize("override", ["FileInfo", "AuthConfig"])
def test_environ_pass_authorization_from_htaccess(httpd_env, override):
    """mod_wsgi takes WSGIPassAuthorization in .htaccess under AllowOverride
    FileInfo; Tether takes it there and under AuthConfig."""
    config = ("<Directory @APPS@/ht>\n"
              "    AllowOverride %s\n"
              "</Directory>\n"
              "WSGIScriptAlias /ht @APPS@/ht/environ_app.wsgi\n" % override)
    srv = httpd_env.server(config, name="environ-htaccess-" + override)
    ht = os.path.join(srv.apps, "ht")
    os.mkdir(ht)
    os.chmod(ht, 0o755)
    shutil.copy(os.path.join(srv.apps, "environ_app.wsgi"), ht)
    with open(os.path.join(ht, ".htaccess"), "w") as f:
        f.write("WSGIPassAuthorization On\n")
    for name in ("environ_app.wsgi", ".htaccess"):
        os.chmod(os.path.join(ht, name), 0o644)
    with srv:
        env = environ_of(srv, "/ht/x",
                         headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert env["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"


# --- types and wsgi.* --------------------------------------------------------

def test_environ_is_dict_with_native_string_cgi_values(server):
    result = fetch(server, "/app/x?y=1", headers={"X-Extra": "z"})
    assert result["checks"]["environ_is_dict"]
    assert result["checks"]["keys_are_str"]
    cgi = {k: t for k, t in result["types"].items() if "." not in k}
    assert cgi, result
    assert {k: t for k, t in cgi.items() if t != "str"} == {}


def test_environ_wsgi_keys(server):
    result = fetch(server, "/app/x")
    env = result["environ"]
    assert env["wsgi.version"] == [1, 0]
    assert result["types"]["wsgi.version"] == "tuple"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is server.multithreaded
    assert env["wsgi.multiprocess"] is server.multiprocess
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert result["checks"]["input_methods"]
    assert result["checks"]["errors_methods"]
    assert result["checks"]["file_wrapper_callable"]


def test_environ_mod_wsgi_keys(server):
    env = environ_of(server, "/app/x")
    assert env["mod_wsgi.process_group"] == server.process_group
    assert env["mod_wsgi.application_group"] == \
        "127.0.0.1:%d|/app" % server.port
    assert env["mod_wsgi.callable_object"] == "application"
    version = env["mod_wsgi.version"]
    assert isinstance(version, list) and len(version) == 3
    assert all(isinstance(part, int) for part in version)
    assert isinstance(env["mod_wsgi.request_id"], str)
    assert env["mod_wsgi.request_id"]


def test_environ_tether_keys(server, tether_only):
    import tether
    env = environ_of(server, "/app/x")
    assert env["tether.version"] in (
        tether.__version__,
        [int(part) for part in tether.__version__.split(".")])
    assert env["tether.process_group"] == server.process_group
    assert env["tether.application_group"] == \
        env["mod_wsgi.application_group"]
    assert env["tether.callable_object"] == "application"
    assert env["tether.script_name"] == env["SCRIPT_NAME"]
    assert env["tether.request_id"] == env["mod_wsgi.request_id"]
    assert isinstance(env["tether.request_id"], str)


# The keys Tether sets once as "tether.NAME" and puts in the environ under
# mod_wsgi's name too.
SHARED_NAMES = ["process_group", "application_group", "callable_object",
                "script_name", "path_info", "script_reloading", "request_id",
                "request_start", "script_start"]


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_environ_tether_keys_have_the_same_mod_wsgi_keys(server, tether_only,
                                                        name):
    env = environ_of(server, "/app/x/y")
    assert env["tether." + name] == env["mod_wsgi." + name]
    assert isinstance(env["mod_wsgi." + name], str)


def test_environ_request_id_differs_between_requests(server):
    first = environ_of(server, "/app/x")["mod_wsgi.request_id"]
    second = environ_of(server, "/app/x")["mod_wsgi.request_id"]
    assert first != second


# --- application group -------------------------------------------------------

def test_environ_default_application_group_is_server_port_and_mount(server):
    assert environ_of(server, "/app/x")["mod_wsgi.application_group"] == \
        "127.0.0.1:%d|/app" % server.port
    assert environ_of(server, "/auth/x")["mod_wsgi.application_group"] == \
        "127.0.0.1:%d|/auth" % server.port
    assert environ_of(server, "/x")["mod_wsgi.application_group"] == \
        "127.0.0.1:%d|" % server.port


def test_environ_application_group_uses_server_name_not_host_header(server):
    # A client must not be able to pick interpreter names by its Host header.
    env = environ_of(server, "/app/x",
                     headers={"Host": "example.test:%d" % server.port})
    assert env["SERVER_NAME"] == "example.test"
    assert env["mod_wsgi.application_group"] == \
        "127.0.0.1:%d|/app" % server.port


def test_environ_application_group_omits_port_80(server):
    env = environ_of(server, "/app/x", headers={"Host": "example.test"})
    assert env["SERVER_PORT"] == "80"
    assert env["mod_wsgi.application_group"] == "127.0.0.1|/app"


# --- concurrency -------------------------------------------------------------

def test_environ_values_follow_each_request(server):
    # The environ cache keeps each key's last value: a value that differs
    # from the last one, even only in its last byte or in a Latin-1 byte,
    # is the request's own.
    values = ["abc", "abd", "abc", "", "abcd", "ab\xe9", "ab\xe8", "abc",
              "x" * 200, "x" * 199 + "y", "x" * 200]
    seen = []
    for value in values:
        env = environ_of(server, "/app/v", headers={"X-Value": value})
        seen.append(env["HTTP_X_VALUE"])
    assert seen == values


def test_environ_concurrent_requests_do_not_share_values(server):
    def one(i):
        env = environ_of(server, "/app/req/%d?i=%d" % (i, i),
                         headers={"X-Req": str(i)})
        return i, env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_X_REQ"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(48)))
    for i, path_info, query, header in results:
        assert (path_info, query, header) == ("/req/%d" % i, "i=%d" % i,
                                              str(i))
