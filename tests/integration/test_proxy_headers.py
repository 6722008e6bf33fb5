"""WSGITrustedProxyHeaders and WSGITrustedProxies (mod_wsgi's semantics).

The test client is 127.0.0.1.  Under /t/<header> that header is trusted
from 127.0.0.1; under /u/<header> it is trusted only from 10.9.9.9 (a
config value: no traffic goes there), so the client is an untrusted peer.
"""

import json
import os
import shutil

import pytest

from harness import decode_chunked

# header -> (a value, the environ entries it must set from a trusted peer)
HEADERS = {
    "X-Forwarded-For": ("203.0.113.7", {"REMOTE_ADDR": "203.0.113.7"}),
    "X-Client-IP": ("203.0.113.8", {"REMOTE_ADDR": "203.0.113.8"}),
    "X-Real-IP": ("203.0.113.9", {"REMOTE_ADDR": "203.0.113.9"}),
    "X-Forwarded-Host": ("example.org:8443",
                         {"HTTP_HOST": "example.org:8443"}),
    "X-Host": ("example.net", {"HTTP_HOST": "example.net"}),
    "X-Forwarded-Server": ("www.example.org",
                           {"SERVER_NAME": "www.example.org"}),
    "X-Forwarded-Port": ("8443", {"SERVER_PORT": "8443"}),
    "X-Forwarded-Proto": ("https", {"wsgi.url_scheme": "https",
                                    "HTTPS": "1"}),
    "X-Forwarded-Scheme": ("HTTPS", {"wsgi.url_scheme": "https",
                                     "HTTPS": "1"}),
    "X-Scheme": ("https", {"wsgi.url_scheme": "https", "HTTPS": "1"}),
    "X-Forwarded-HTTPS": ("on", {"wsgi.url_scheme": "https", "HTTPS": "1"}),
    "X-Forwarded-SSL": ("1", {"wsgi.url_scheme": "https", "HTTPS": "1"}),
    "X-Script-Name": ("/mount", {"SCRIPT_NAME": "/mount"}),
    "X-Forwarded-Script-Name": ("/mount/", {"SCRIPT_NAME": "/mount"}),
}

# The headers standing for the same thing (mod_wsgi's sets).
GROUPS = [
    ("X-Forwarded-For", "X-Client-IP", "X-Real-IP"),
    ("X-Forwarded-Host", "X-Host"),
    ("X-Forwarded-Server",),
    ("X-Forwarded-Port",),
    ("X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Scheme",
     "X-Forwarded-HTTPS", "X-Forwarded-SSL"),
    ("X-Script-Name", "X-Forwarded-Script-Name"),
]


def group_of(header):
    return next(g for g in GROUPS if header in g)


def env_key(header):
    return "HTTP_" + header.upper().replace("-", "_")


def _config():
    lines = ["WSGIScriptAlias /ht @APPS@/ht/environ_app.wsgi",
             "<Directory @APPS@/ht>",
             "    AllowOverride FileInfo",
             "</Directory>",
             "WSGIScriptAlias / @APPS@/environ_app.wsgi"]
    for header in HEADERS:
        for prefix, proxies in (("t", "127.0.0.1"), ("u", "10.9.9.9")):
            lines += ["<Location /%s/%s>" % (prefix, header),
                      "    WSGITrustedProxyHeaders %s" % header,
                      "    WSGITrustedProxies %s" % proxies,
                      "</Location>"]
    lines += [
        # Several hops: loopback and 10/8 are our proxies.
        "<Location /chain>",
        "    WSGITrustedProxyHeaders X-Forwarded-For",
        "    WSGITrustedProxies 127.0.0.1 10.0.0.0/8 2001:db8:ffff::/48",
        "</Location>",
        # No WSGITrustedProxies: every peer is trusted, left-most address.
        "<Location /anypeer>",
        "    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto",
        "</Location>",
        # Every group at once, from a trusted and an untrusted peer.
        "<Location /tall>",
        "    WSGITrustedProxyHeaders X-Real-IP X-Forwarded-Host",
        "    WSGITrustedProxyHeaders X-Forwarded-Server X-Forwarded-Port "
        "X-Forwarded-Proto X-Script-Name",
        "    WSGITrustedProxies 10.9.9.9 127.0.0.0/8",
        "</Location>",
        "<Location /uall>",
        "    WSGITrustedProxyHeaders X-Real-IP X-Forwarded-Host",
        "    WSGITrustedProxyHeaders X-Forwarded-Server X-Forwarded-Port "
        "X-Forwarded-Proto X-Script-Name",
        "    WSGITrustedProxies 10.9.9.9 192.168.0.0/16 fd00::/8",
        "</Location>",
    ]
    return "\n".join(lines) + "\n"


CONFIG = _config()


# The directives are allowed in .htaccess (AllowOverride FileInfo).
HTACCESS = """WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto
WSGITrustedProxies 127.0.0.1 10.0.0.0/8
"""


@pytest.fixture(scope="module")
def server(httpd_env, server_variant):
    srv = httpd_env.server(CONFIG, mpm=server_variant.mpm,
                           wsgi_mode=server_variant.wsgi_mode,
                           name="proxy-" + server_variant.name)
    ht = os.path.join(srv.apps, "ht")
    os.mkdir(ht)
    os.chmod(ht, 0o755)
    shutil.copy(os.path.join(srv.apps, "environ_app.wsgi"), ht)
    with open(os.path.join(ht, ".htaccess"), "w") as f:
        f.write(HTACCESS)
    for name in ("environ_app.wsgi", ".htaccess"):
        os.chmod(os.path.join(ht, name), 0o644)
    with srv:
        yield srv


def environ_of(server, path, headers=()):
    """The app's environ; headers is a list of (name, value), sent as is."""
    resp = server.raw_request("GET", path, headers=list(headers))
    assert resp.status == 200, resp
    body = resp.body
    if resp.header("Transfer-Encoding") == "chunked":
        body, complete = decode_chunked(body)
        assert complete, resp
    return json.loads(body)["environ"]


@pytest.fixture(scope="module")
def baseline(server):
    """The environ without any proxy header."""
    return environ_of(server, "/plain")


# --- each header from a trusted and an untrusted peer ------------------------

@pytest.mark.parametrize("header", list(HEADERS))
def test_proxy_header_from_trusted_peer_takes_effect(server, header):
    value, effect = HEADERS[header]
    env = environ_of(server, "/t/" + header, [(header, value)])
    for key, expected in effect.items():
        assert env.get(key) == expected, (key, env.get(key))
    # The header used is passed on, as an indication of where it came from.
    assert env[env_key(header)] == value


@pytest.mark.parametrize("header", list(HEADERS))
def test_proxy_header_from_untrusted_peer_removed_and_ignored(
        server, baseline, header):
    value, effect = HEADERS[header]
    env = environ_of(server, "/u/" + header, [(header, value)])
    assert env_key(header) not in env
    for key in effect:
        assert env.get(key) == baseline.get(key), key
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env


@pytest.mark.parametrize("header", list(HEADERS))
def test_proxy_header_group_dropped_from_untrusted_peer(server, header):
    """Every header of the trusted one's group goes, not only the trusted
    one (CVE-2022-2255 left X-Client-IP in)."""
    group = group_of(header)
    sent = [(h, HEADERS[h][0]) for h in group]
    env = environ_of(server, "/u/" + header, sent)
    for h in group:
        assert env_key(h) not in env, h
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("header", list(HEADERS))
def test_proxy_header_others_of_group_dropped_from_trusted_peer(
        server, header):
    value, effect = HEADERS[header]
    group = group_of(header)
    # The others first, so that only the named one can explain the result.
    sent = [(h, HEADERS[h][0]) for h in group if h != header]
    sent.append((header, value))
    env = environ_of(server, "/t/" + header, sent)
    for h in group:
        if h != header:
            assert env_key(h) not in env, h
    assert env[env_key(header)] == value
    for key, expected in effect.items():
        assert env.get(key) == expected, key


@pytest.mark.parametrize("prefix", ["t", "u"])
@pytest.mark.parametrize("header", list(HEADERS))
def test_proxy_headers_of_other_groups_pass_through_untouched(
        server, baseline, prefix, header):
    """Headers of groups with no trusted header are ordinary HTTP_* keys,
    from any peer, and change nothing."""
    own = group_of(header)
    others = [h for h in HEADERS if h not in own]
    env = environ_of(server, "/%s/%s" % (prefix, header),
                     [(h, HEADERS[h][0]) for h in others])
    for h in others:
        assert env[env_key(h)] == HEADERS[h][0], h
    for h in others:
        for key in HEADERS[h][1]:
            if not any(key in HEADERS[o][1] for o in own):
                assert env.get(key) == baseline.get(key), (h, key)


def test_proxy_headers_without_directives_pass_through(server, baseline):
    env = environ_of(server, "/plain", [(h, v) for h, (v, _) in
                                        HEADERS.items()])
    for h, (v, _) in HEADERS.items():
        assert env[env_key(h)] == v
    for key in ("REMOTE_ADDR", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT",
                "SCRIPT_NAME", "wsgi.url_scheme"):
        assert env[key] == baseline[key], key


def test_proxy_all_groups_from_trusted_peer(server):
    sent = [("X-Real-IP", "198.51.100.20"),
            ("X-Forwarded-Host", "shop.example.com"),
            ("X-Forwarded-Server", "front.example.com"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
            ("X-Script-Name", "/shop")]
    env = environ_of(server, "/tall", sent)
    assert env["REMOTE_ADDR"] == "198.51.100.20"
    assert env["HTTP_HOST"] == "shop.example.com"
    assert env["SERVER_NAME"] == "front.example.com"
    assert env["SERVER_PORT"] == "443"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "1"
    assert env["SCRIPT_NAME"] == "/shop"


def test_proxy_all_groups_from_untrusted_peer(server, baseline):
    sent = [(h, v) for h, (v, _) in HEADERS.items()]
    env = environ_of(server, "/uall", sent)
    for h in HEADERS:
        assert env_key(h) not in env, h
    for key in ("REMOTE_ADDR", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT",
                "SCRIPT_NAME", "wsgi.url_scheme"):
        assert env[key] == baseline[key], key
    assert "HTTPS" not in env


# --- X-Forwarded-For chains --------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    # trusted hops (10/8, loopback) are skipped from the right
    ("198.51.100.1, 10.1.1.1, 10.2.2.2", "198.51.100.1"),
    ("198.51.100.1,10.1.1.1,127.0.0.1", "198.51.100.1"),
    # the right-most untrusted address wins: what is left of it is the
    # client's own claim
    ("198.51.100.1, 192.0.2.5, 10.2.2.2", "192.0.2.5"),
    ("1.1.1.1, 2.2.2.2", "2.2.2.2"),
    # every hop trusted: the left-most
    ("10.1.1.1, 10.2.2.2", "10.1.1.1"),
    # spaces and empty elements
    ("   198.51.100.1   ", "198.51.100.1"),
    ("\t198.51.100.1 ,, , 10.2.2.2 ,", "198.51.100.1"),
    # IPv6, bracketed, canonicalised; trusted IPv6 network skipped
    ("2001:db8::1, 10.2.2.2", "2001:db8::1"),
    ("[2001:db8::2]", "2001:db8::2"),
    ("2001:DB8:0:0::3", "2001:db8::3"),
    ("2001:db8::4, 2001:db8:ffff::9", "2001:db8::4"),
    ("::ffff:198.51.100.3", "::ffff:198.51.100.3"),
])
def test_proxy_forwarded_for_chain(server, value, expected):
    env = environ_of(server, "/chain", [("X-Forwarded-For", value)])
    assert env["REMOTE_ADDR"] == expected
    assert env["HTTP_X_FORWARDED_FOR"].strip() == value.strip()


@pytest.mark.parametrize("value", [
    "", " ", ",", ", ,,", "garbage", "garbage, 10.2.2.2",
    "198.51.100.1, garbage", "999.1.1.1", "1.2.3", "1.2.3.4.5",
    "198.51.100.1 198.51.100.2", "198.51.100.1:8080", "[2001:db8::1]:80",
    "fe80::1%eth0", "01.2.3.4", "::g", "[198.51.100.1]",
    "unknown", "a" * 2000,
])
def test_proxy_forwarded_for_garbage_keeps_peer_address(server, value):
    env = environ_of(server, "/chain", [("X-Forwarded-For", value)])
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_forwarded_for_repeated_header_lines_are_one_chain(server):
    env = environ_of(server, "/chain", [("X-Forwarded-For", "198.51.100.1"),
                                        ("X-Forwarded-For", "192.0.2.9"),
                                        ("X-Forwarded-For", "10.2.2.2")])
    assert env["REMOTE_ADDR"] == "192.0.2.9"


def test_proxy_forwarded_for_without_trusted_proxies_uses_left_most(server):
    env = environ_of(server, "/anypeer",
                     [("X-Forwarded-For", " , 198.51.100.1, 10.2.2.2"),
                      ("X-Forwarded-Proto", "https")])
    assert env["REMOTE_ADDR"] == "198.51.100.1"
    assert env["wsgi.url_scheme"] == "https"


def test_proxy_directives_in_htaccess(server):
    env = environ_of(server, "/ht", [("X-Forwarded-For",
                                      "198.51.100.4, 10.3.3.3"),
                                     ("X-Forwarded-Proto", "https"),
                                     ("X-Scheme", "http")])
    assert env["REMOTE_ADDR"] == "198.51.100.4"
    assert env["wsgi.url_scheme"] == "https"
    assert "HTTP_X_SCHEME" not in env


# --- malformed values of the other headers -----------------------------------

@pytest.mark.parametrize("header, value", [
    ("X-Real-IP", "198.51.100.1, 198.51.100.2"),
    ("X-Client-IP", "localhost"),
    ("X-Forwarded-Host", "evil host"),
    ("X-Forwarded-Host", "a/b"),
    ("X-Forwarded-Host", ""),
    ("X-Forwarded-Server", "bad\\name"),
    ("X-Forwarded-Port", "abc"),
    ("X-Forwarded-Port", "0"),
    ("X-Forwarded-Port", "70000"),
    ("X-Forwarded-Port", "-1"),
    ("X-Forwarded-Proto", "ftp"),
    ("X-Forwarded-SSL", "maybe"),
    ("X-Script-Name", "mount"),
    ("X-Forwarded-Script-Name", "/a b"),
])
def test_proxy_malformed_value_from_trusted_peer_changes_nothing(
        server, baseline, header, value):
    env = environ_of(server, "/t/" + header, [(header, value)])
    for key in HEADERS[header][1]:
        assert env.get(key) == baseline.get(key), key


def test_proxy_scheme_http_from_trusted_peer(server):
    env = environ_of(server, "/t/X-Forwarded-Proto",
                     [("X-Forwarded-Proto", "http, https")])
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env
    env = environ_of(server, "/t/X-Forwarded-SSL",
                     [("X-Forwarded-SSL", "off")])
    assert env["wsgi.url_scheme"] == "http"


def test_proxy_forwarded_host_first_of_list(server):
    env = environ_of(server, "/t/X-Forwarded-Host",
                     [("X-Forwarded-Host", "a.example, b.example")])
    assert env["HTTP_HOST"] == "a.example"


# --- configuration errors (apachectl -t) -------------------------------------

@pytest.mark.parametrize("line, bad", [
    ("WSGITrustedProxies 10.0.0.0/33", "10.0.0.0/33"),
    ("WSGITrustedProxies 10.0.0.0/", "10.0.0.0/"),
    ("WSGITrustedProxies 10.0.0.0/x", "10.0.0.0/x"),
    ("WSGITrustedProxies proxy.example.com", "proxy.example.com"),
    ("WSGITrustedProxies 10.0.0.1 300.1.1.1", "300.1.1.1"),
    ("WSGITrustedProxies 2001:db8::/129", "2001:db8::/129"),
    ("WSGITrustedProxyHeaders X-Forwarded-Fore", "X-Forwarded-Fore"),
    ("WSGITrustedProxyHeaders X-Forwarded-For Forwarded", "Forwarded"),
])
def test_proxy_config_bad_value_refused(server, line, bad):
    status, output = server.configtest(line + "\n")
    assert status != 0, output
    assert line.split()[0] in output, output
    assert "'%s'" % bad in output, output


def test_proxy_config_valid_values_accepted(server):
    config = ("WSGITrustedProxyHeaders x-forwarded-for X-FORWARDED-PROTO\n"
              "WSGITrustedProxies 10.0.0.5 192.168.0.0/16 ::1 fd00::/8\n"
              "<Directory @ROOT@/htdocs>\n"
              "    WSGITrustedProxyHeaders X-Real-IP\n"
              "    WSGITrustedProxies 172.16.0.0/12\n"
              "</Directory>\n")
    status, output = server.configtest(config)
    assert status == 0, output
