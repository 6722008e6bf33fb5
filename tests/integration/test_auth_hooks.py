"""mod_wsgi's hook-script directives against a real Apache.

WSGIAccessScript, WSGIAuthUserScript (Basic through mod_auth_basic, Digest
through mod_auth_digest), WSGIAuthGroupScript with `Require wsgi-group`,
WSGIDispatchScript, WSGIHandlerScript, WSGIErrorOverride,
WSGIEnableSendfile and WSGIPassApacheRequest, plus the `httpd -t` errors
for bad values.  The scripts live in tests/apps/auth/.
"""

import base64
import hashlib
import os
import re
import urllib.error
import urllib.request

import pytest

import harness

A = "@APPS@/auth"
DAEMON = "tether-auth"


def _modules(httpd_env):
    names = ("auth_basic", "auth_digest", "authz_user", "authz_host")
    return "\n".join(line for line in
                     (httpd_env.install.module_line(n) for n in names) if line)


def _basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return {"Authorization": "Basic " + token}


def _auth_block(provider_line, require="Require valid-user",
                extra=""):
    return f"""
    {provider_line}
    AuthName "Top Secret"
    WSGIAuthUserScript {A}/auth.wsgi
    {extra}
    {require}
"""


CONFIG = f"""
WSGIDaemonProcess {DAEMON} processes=1 threads=4 display-name=%{{GROUP}}
WSGIScriptAlias /whoami {A}/whoami.wsgi

# --- WSGIAccessScript
WSGIScriptAlias /acc {A}/whoami.wsgi
WSGIScriptAlias /accgroup {A}/whoami.wsgi
<Location /acc>
    WSGIAccessScript {A}/auth.wsgi
    SetEnv TETHER_SECRET from-setenv
</Location>
<Location /accgroup>
    WSGIAccessScript {A}/auth.wsgi application-group=authgroup
</Location>

# --- WSGIAuthUserScript, WSGIAuthGroupScript
WSGIScriptAlias /basic {A}/whoami.wsgi
WSGIScriptAlias /digest {A}/whoami.wsgi
WSGIScriptAlias /group {A}/whoami.wsgi
WSGIScriptAlias /staff {A}/whoami.wsgi
WSGIScriptAlias /nouserscript {A}/whoami.wsgi
<Location /basic>
    AuthType Basic
    AuthBasicProvider wsgi
{_auth_block("")}
</Location>
<Location /digest>
    AuthType Digest
    AuthDigestProvider wsgi
    AuthDigestDomain /digest
{_auth_block("")}
</Location>
<Location /group>
    AuthType Basic
    AuthBasicProvider wsgi
{_auth_block("", "Require wsgi-group secret-agents other",
             f"WSGIAuthGroupScript {A}/auth.wsgi")}
</Location>
<Location /staff>
    AuthType Basic
    AuthBasicProvider wsgi
{_auth_block("", "Require wsgi-group staff",
             f"WSGIAuthGroupScript {A}/auth.wsgi application-group=grp")}
</Location>
WSGIScriptAlias /aliased {A}/whoami.wsgi
<AuthnProviderAlias wsgi tetherauth>
    WSGIAuthUserScript {A}/auth.wsgi application-group=aliased
</AuthnProviderAlias>
<Location /aliased>
    AuthType Basic
    AuthName "Aliased"
    AuthBasicProvider tetherauth
    Require valid-user
</Location>
<Location /nouserscript>
    AuthType Basic
    AuthName "Nothing"
    AuthBasicProvider wsgi
    Require valid-user
</Location>

# --- WSGIDispatchScript
WSGIScriptAlias /dispatch {A}/whoami.wsgi
<Location /dispatch>
    WSGIDispatchScript {A}/dispatch.wsgi
</Location>

# --- WSGIHandlerScript
WSGIHandlerScript wsgi-resource {A}/whoami.wsgi
WSGIHandlerScript wsgi-daemon-resource {A}/whoami.wsgi process-group={DAEMON} application-group=%{{GLOBAL}}
<Location /handled>
    SetHandler wsgi-resource
</Location>
<Location /handled-daemon>
    SetHandler wsgi-daemon-resource
</Location>
<Directory "@ROOT@/htdocs">
    AddHandler wsgi-resource .res
</Directory>

# --- WSGIErrorOverride
WSGIScriptAlias /err {A}/errors.wsgi process-group={DAEMON} application-group=%{{GLOBAL}}
WSGIScriptAlias /noerr {A}/errors.wsgi process-group={DAEMON} application-group=%{{GLOBAL}}
WSGIScriptAlias /emberr {A}/errors.wsgi
<Location /err>
    WSGIErrorOverride On
    ErrorDocument 404 "Apache's own 404 page"
</Location>
<Location /noerr>
    ErrorDocument 404 "Apache's own 404 page"
</Location>
WSGIScriptAlias /errlocal {A}/errors.wsgi process-group={DAEMON} application-group=%{{GLOBAL}}
<Location /errlocal>
    WSGIErrorOverride On
    ErrorDocument 404 /whoami/error-page
</Location>
<Location /emberr>
    WSGIErrorOverride On
    ErrorDocument 404 "Apache's own 404 page"
</Location>

# --- WSGIEnableSendfile, WSGIPassApacheRequest
WSGIScriptAlias /sendfile-on {A}/sendfile.wsgi
WSGIScriptAlias /sendfile-off {A}/sendfile.wsgi
WSGIScriptAlias /rr-on {A}/whoami.wsgi
WSGIScriptAlias /rr-daemon {A}/whoami.wsgi process-group={DAEMON}
<Location /sendfile-on>
    WSGIEnableSendfile On
</Location>
<Location /sendfile-off>
    WSGIEnableSendfile Off
</Location>
<Location /rr-on>
    WSGIPassApacheRequest On
</Location>
<Location /rr-daemon>
    WSGIPassApacheRequest On
</Location>
"""


@pytest.fixture(scope="module")
def server(httpd_env, tether_only):
    for name in ("auth_basic", "auth_digest", "authz_user"):
        if not httpd_env.install.has_module(name):
            pytest.skip("mod_%s is not installed" % name)
    config = _modules(httpd_env) + "\n" + CONFIG
    with httpd_env.server(config, name="auth-hooks") as srv:
        with open(os.path.join(srv.root, "htdocs", "thing.res"), "w") as f:
            f.write("a resource\n")
        os.chmod(os.path.join(srv.root, "htdocs", "thing.res"), 0o644)
        yield srv


def _digest_get(server, path, user, password):
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    url = "http://127.0.0.1:%d%s" % (server.port, path)
    mgr.add_password(None, url, user, password)
    opener = urllib.request.build_opener(
        urllib.request.HTTPDigestAuthHandler(mgr))
    try:
        with opener.open(url, timeout=harness.IO_TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _refused(server, path, status, log_pattern, headers=None):
    """GET `path`: asserts `status`, then waits for `log_pattern` in the
    error log lines the request wrote.  Returns those lines."""
    mark = server.log_mark()
    assert server.get(path, headers=headers).status == status
    server.wait_for_log(log_pattern, since=mark)
    return server.error_log(since=mark)


def _failed_with_traceback(server, path, message, headers=None):
    """GET `path` fails with 500 and logs the traceback of `message`."""
    log = _refused(server, path, 500, re.escape(message), headers)
    assert "TETHER0302: Traceback" in log, log


# --- WSGIAccessScript ----------------------------------------------------------

class TestAccessScript:

    def test_access_script_true_serves_the_request(self, server):
        assert server.get("/acc/ok").status == 200

    def test_access_script_false_is_403_and_logged(self, server):
        _refused(server, "/acc/deny", 403,
                 r"TETHER0172.*returned False for host '127\.0\.0\.1'")

    def test_access_script_none_leaves_the_decision_to_apache(self, server):
        # No opinion: Apache's own access rules (Require all granted) hold.
        assert server.get("/acc/none").status == 200

    def test_access_script_gets_the_client_host(self, server):
        assert server.get("/acc/host").status == 200

    def test_access_script_environ_has_no_setenv_values(self, server):
        assert server.get("/acc/setenv").status == 200

    def test_access_script_wsgi_errors_reach_the_error_log(self, server):
        mark = server.log_mark()
        server.get("/acc/ok-logged")
        server.wait_for_log(r"allow_access /acc/ok-logged from 127\.0\.0\.1",
                            since=mark)

    def test_access_script_exception_is_500_with_traceback(self, server):
        _failed_with_traceback(server, "/acc/boom",
                               "allow_access blew up on purpose")

    def test_access_script_wrong_result_type_is_500(self, server):
        _refused(server, "/acc/bad", 500,
                 r"TETHER0170.*allow_access\(\).*returned int")

    def test_access_script_runs_in_main_interpreter_by_default(self, server):
        assert server.get("/acc/main").status == 200

    def test_access_script_application_group_option(self, server):
        assert server.get("/accgroup").status == 200


# --- WSGIAuthUserScript: Basic -------------------------------------------------

class TestBasicAuth:

    def test_basic_auth_without_credentials_is_401(self, server):
        resp = server.get("/basic")
        assert resp.status == 401
        assert resp.header("WWW-Authenticate").startswith("Basic")

    def test_basic_auth_good_password_sets_remote_user(self, server):
        resp = server.get("/basic", headers=_basic("spy", "secret"))
        assert resp.status == 200, resp
        data = resp.json()
        assert data["REMOTE_USER"] == "spy"
        assert data["AUTH_TYPE"] == "Basic"
        # The application never sees the password.
        assert data["HTTP_AUTHORIZATION"] is None

    def test_basic_auth_wrong_password_is_401(self, server):
        assert server.get("/basic",
                          headers=_basic("spy", "guess")).status == 401

    def test_basic_auth_unknown_user_is_401(self, server):
        # mod_auth_basic's own "user not found" message (None).
        _refused(server, "/basic", 401, r"user nobody not found",
                 _basic("nobody", "x"))

    def test_basic_auth_string_result_renames_the_user(self, server):
        resp = server.get("/basic", headers=_basic("alias", "pw"))
        assert resp.status == 200
        assert resp.json()["REMOTE_USER"] == "canonical"

    def test_basic_auth_exception_is_500_with_traceback(self, server):
        _failed_with_traceback(server, "/basic",
                               "check_password blew up on purpose",
                               _basic("boom", "x"))

    def test_basic_auth_wrong_result_type_is_500(self, server):
        _refused(server, "/basic", 500,
                 r"TETHER0170.*check_password\(\).*returned float",
                 _basic("weird", "x"))

    def test_basic_auth_through_an_authn_provider_alias(self, server):
        resp = server.get("/aliased", headers=_basic("spy", "secret"))
        assert resp.status == 200
        assert resp.json()["REMOTE_USER"] == "spy"
        assert server.get("/aliased",
                          headers=_basic("spy", "guess")).status == 401

    def test_basic_auth_provider_without_script_is_500(self, server):
        _refused(server, "/nouserscript", 500, r"TETHER0173",
                 _basic("spy", "secret"))


# --- WSGIAuthUserScript: Digest ------------------------------------------------

class TestDigestAuth:

    def test_digest_auth_good_password(self, server):
        status, body = _digest_get(server, "/digest", "spy", "secret")
        assert status == 200, body
        assert b'"REMOTE_USER": "spy"' in body
        assert b'"AUTH_TYPE": "Digest"' in body

    def test_digest_auth_wrong_password_is_401(self, server):
        status, _ = _digest_get(server, "/digest", "spy", "guess")
        assert status == 401

    def test_digest_auth_unknown_user_is_401(self, server):
        status, _ = _digest_get(server, "/digest", "nobody", "x")
        assert status == 401

    def test_digest_auth_exception_is_500_with_traceback(self, server):
        mark = server.log_mark()
        status, _ = _digest_get(server, "/digest", "boom", "x")
        assert status == 500
        log = server.wait_for_log(re.escape("get_realm_hash blew up on "
                                            "purpose"), since=mark)
        assert "TETHER0302: Traceback" in server.error_log(since=mark), log


# --- WSGIAuthGroupScript -------------------------------------------------------

class TestGroupScript:

    def test_group_member_is_served(self, server):
        resp = server.get("/group", headers=_basic("spy", "secret"))
        assert resp.status == 200
        assert resp.json()["REMOTE_USER"] == "spy"

    def test_group_non_member_is_refused(self, server):
        _refused(server, "/group", 401, r"TETHER0175.*User 'canonical'",
                 _basic("alias", "pw"))

    def test_group_sees_the_renamed_user_in_an_application_group(
            self, server):
        # check_password() renamed alias to canonical, who is staff.
        resp = server.get("/staff", headers=_basic("alias", "pw"))
        assert resp.status == 200
        assert server.get("/staff",
                          headers=_basic("spy", "secret")).status == 401

    def test_group_exception_is_500_with_traceback(self, server):
        _failed_with_traceback(server, "/group",
                               "groups_for_user blew up on purpose",
                               _basic("grpboom", "x"))


# --- WSGIDispatchScript ---------------------------------------------------------

class TestDispatchScript:

    def test_dispatch_none_keeps_the_configured_routing(self, server):
        data = server.get("/dispatch/plain").json()
        assert data["mod_wsgi.process_group"] == ""
        assert data["callable"] == "application"

    def test_dispatch_chooses_the_application_group(self, server):
        data = server.get("/dispatch/named").json()
        assert data["mod_wsgi.application_group"] == "chosen-by-dispatch"
        assert data["mod_wsgi.process_group"] == ""

    def test_dispatch_chooses_a_daemon_group(self, server):
        data = server.get("/dispatch/daemon").json()
        assert data["mod_wsgi.process_group"] == DAEMON
        assert data["mod_wsgi.application_group"] == ""
        assert data["pid"] in server.daemon_pids(DAEMON)

    def test_dispatch_chooses_the_callable(self, server):
        assert server.get("/dispatch/alt").json()["callable"] == "alt_app"

    def test_dispatch_exception_is_500_with_traceback(self, server):
        _failed_with_traceback(server, "/dispatch/boom",
                               "process_group blew up on purpose")

    def test_dispatch_wrong_result_type_is_500(self, server):
        _refused(server, "/dispatch/bad", 500,
                 r"TETHER0160.*application_group\(\).*returned int")


# --- WSGIHandlerScript -----------------------------------------------------------

class TestHandlerScript:

    def test_handler_script_via_sethandler(self, server):
        resp = server.get("/handled/some/where")
        assert resp.status == 200
        data = resp.json()
        assert data["callable"] == "handle_request"
        assert data["mod_wsgi.handler_script"].endswith("/auth/whoami.wsgi")
        assert data["mod_wsgi.process_group"] == ""

    def test_handler_script_via_addhandler(self, server):
        resp = server.get("/thing.res")
        assert resp.status == 200
        assert resp.json()["callable"] == "handle_request"
        # An application's own script has none.
        assert server.get("/whoami").json()["mod_wsgi.handler_script"] == ""

    def test_handler_script_in_a_daemon_group(self, server):
        data = server.get("/handled-daemon/x").json()
        assert data["callable"] == "handle_request"
        assert data["mod_wsgi.handler_script"].endswith("/auth/whoami.wsgi")
        assert data["mod_wsgi.process_group"] == DAEMON
        assert data["pid"] in server.daemon_pids(DAEMON)


# --- WSGIErrorOverride -------------------------------------------------------------

class TestErrorOverride:

    def test_error_override_uses_apaches_error_document(self, server):
        resp = server.get("/err/404")
        assert resp.status == 404
        assert resp.body == b"Apache's own 404 page"
        assert resp.header("X-From-App") is None

    def test_error_override_with_a_local_error_document(self, server):
        # Apache redirects internally to the error page, whose own handler
        # (a WSGI application here) then sets the status, as for CGI.
        resp = server.get("/errlocal/404")
        data = resp.json()
        assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == \
            ("/whoami", "/error-page")
        assert data["REQUEST_URI"] == "/errlocal/404"
        assert resp.header("X-From-App") is None

    def test_error_override_leaves_success_alone(self, server):
        resp = server.get("/err/ok")
        assert resp.status == 200
        assert resp.body == b"fine"

    def test_error_override_off_keeps_the_applications_page(self, server):
        resp = server.get("/noerr/404")
        assert resp.status == 404
        assert resp.body == b"the application's own 404 page"

    def test_error_override_has_no_effect_in_embedded_mode(self, server):
        resp = server.get("/emberr/404")
        assert resp.status == 404
        assert resp.body == b"the application's own 404 page"

    def test_error_override_keeps_the_daemon_connection_usable(self, server):
        for _ in range(5):
            assert server.get("/err/404").status == 404
            assert server.get("/err/ok").body == b"fine"


# --- WSGIEnableSendfile, WSGIPassApacheRequest ---------------------------------

class TestFileAndRequestOptions:

    def test_enable_sendfile_on_and_off_send_the_whole_file(self, server):
        with open(os.path.join(harness.APPS_SOURCE, "auth",
                               "sendfile.wsgi"), "rb") as f:
            source = f.read()
        for path in ("/sendfile-on", "/sendfile-off"):
            resp = server.get(path)
            assert resp.status == 200
            assert resp.body == source

    def test_pass_apache_request_gives_a_capsule_in_embedded_mode(
            self, server):
        assert server.get("/rr-on").json()["request_rec"] == "PyCapsule"
        assert server.get("/whoami").json()["request_rec"] is None

    def test_pass_apache_request_gives_nothing_in_daemon_mode(self, server):
        data = server.get("/rr-daemon").json()
        assert data["mod_wsgi.process_group"] == DAEMON
        assert data["request_rec"] is None


# --- configuration errors ----------------------------------------------------------

BAD_CONFIGS = [
    (f"<Location /x>\nWSGIAccessScript {A}/missing.wsgi\n</Location>",
     f"WSGIAccessScript: the script '{A}/missing.wsgi' does not exist"),
    (f"<Location /x>\nWSGIAuthUserScript {A}/auth.wsgi colour=blue\n"
     "</Location>",
     "WSGIAuthUserScript: unknown option 'colour'"),
    (f"<Location /x>\nWSGIAuthGroupScript {A}/auth.wsgi "
     "application-group=%{NOPE}\n</Location>",
     "unknown expansion '%{NOPE}'"),
    (f"WSGIAccessScript {A}/auth.wsgi",
     "WSGIAccessScript not allowed here"),
    ("<Location /x>\nWSGIAuthUserScript\n</Location>",
     "WSGIAuthUserScript needs a script file"),
    (f"WSGIDispatchScript {A}/nope.wsgi",
     f"WSGIDispatchScript: the script '{A}/nope.wsgi' does not exist"),
    ("WSGIHandlerScript lonely",
     "WSGIHandlerScript needs a handler name and a script file"),
    (f"WSGIHandlerScript wsgi-script {A}/whoami.wsgi",
     "WSGIHandlerScript: 'wsgi-script' is the handler of WSGI scripts"),
    (f"WSGIHandlerScript h {A}/whoami.wsgi pass-authorization=maybe",
     "pass-authorization: 'maybe' is not On or Off"),
    (f"WSGIHandlerScript h {A}/whoami.wsgi process-group=nowhere",
     "WSGIHandlerScript h process-group 'nowhere' names no "
     "WSGIDaemonProcess group"),
    ("WSGIErrorOverride sometimes",
     "WSGIErrorOverride: 'sometimes' is not On or Off"),
    ("WSGIEnableSendfile yes", "WSGIEnableSendfile: 'yes' is not On or Off"),
    ("WSGIPassApacheRequest 2",
     "WSGIPassApacheRequest: '2' is not On or Off"),
    ("<Location /x>\nAuthType Basic\nAuthName x\nRequire wsgi-group\n"
     "</Location>",
     "Require wsgi-group needs one or more group names"),
    ("WSGIFreeThreading On",
     "WSGIFreeThreading is a mod_wsgi directive that Tether does not "
     "support"),
]


@pytest.mark.parametrize("config,message", BAD_CONFIGS)
def test_auth_hooks_bad_config_is_refused_by_apachectl(server, config,
                                                       message):
    status, output = server.configtest(config)
    output = " ".join(output.split())
    assert status != 0, output
    assert server.expand(message) in output


def test_auth_hooks_good_config_passes_apachectl(server):
    status, output = server.configtest(
        _modules_for(server) + f"""
WSGIDaemonProcess {DAEMON}
<Location /x>
    AuthType Basic
    AuthName x
    AuthBasicProvider wsgi
    WSGIAuthUserScript {A}/auth.wsgi application-group=%{{SERVER}}
    WSGIAuthGroupScript {A}/auth.wsgi
    WSGIAccessScript {A}/auth.wsgi
    Require wsgi-group a b
</Location>
<AuthnProviderAlias wsgi django>
    WSGIAuthUserScript {A}/auth.wsgi application-group=django
</AuthnProviderAlias>
WSGIDispatchScript {A}/dispatch.wsgi application-group=%{{GLOBAL}}
WSGIHandlerScript h {A}/whoami.wsgi process-group={DAEMON} application-group=x pass-authorization=On
WSGIErrorOverride Off
WSGIEnableSendfile On
WSGIPassApacheRequest Off
""")
    assert status == 0, output


def _modules_for(server):
    names = ("auth_basic", "authz_user")
    return "\n".join(line for line in
                     (server.install.module_line(n) for n in names) if line)
