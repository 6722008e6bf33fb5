"""tether-express's HTTPS, HTTP/2, front-end proxy, health URL and
--reload-on-changes options as they render into httpd.conf, and the
reload monitor's bookkeeping.  No Apache is started."""

import os
import re
import types

import pytest

from tether import express, reloader
from test_render import conf_of, fake_apache, layout, setup_for  # noqa: F401

SSL_MODULES = ("mod_ssl.so", "mod_socache_shmcb.so", "mod_headers.so")


@pytest.fixture
def tls(layout):  # noqa: F811
    for name in SSL_MODULES:
        (layout["modules"] / name).write_bytes(b"")
    crt = layout["root"] / "site.crt"
    key = layout["root"] / "site.key"
    crt.write_text("certificate")
    key.write_text("key")
    layout["crt"], layout["key"] = str(crt), str(key)
    return layout


def loaded(conf):
    return re.findall(r"^LoadModule (\w+) ", conf, re.MULTILINE)


def test_https_port_adds_a_tls_virtual_host(tls):
    setup = setup_for(tls, "--port", "8000", "--https-port", "8443",
                      "--ssl-certificate-file", tls["crt"],
                      "--ssl-certificate-key-file", tls["key"])
    conf = conf_of(setup)
    assert {"ssl_module", "socache_shmcb_module"} <= set(loaded(conf))
    assert "Listen 8443 https" in conf
    host = conf[conf.index("<VirtualHost _default_:8443>"):]
    assert 'SSLCertificateFile "%s"' % tls["crt"] in host
    assert 'SSLCertificateKeyFile "%s"' % tls["key"] in host
    assert "SSLEngine On" in host
    assert "SSLVerifyClient" not in conf and "StdEnvVars" not in conf
    summary = dict(setup.summary)
    assert summary["HTTPS URL"] == "https://localhost:8443/"


def test_ssl_certificate_names_crt_and_key(tls):
    base = tls["crt"][:-len(".crt")]
    os.rename(tls["key"], base + ".key")
    conf = conf_of(setup_for(tls, "--https-port", "8443",
                             "--ssl-certificate", base))
    assert 'SSLCertificateFile "%s.crt"' % base in conf
    assert 'SSLCertificateKeyFile "%s.key"' % base in conf


def test_ssl_client_verification_site_wide_or_per_url(tls):
    common = ["--https-port", "8443", "--ssl-certificate-file", tls["crt"],
              "--ssl-certificate-key-file", tls["key"],
              "--ssl-ca-certificate-file", tls["crt"]]
    conf = conf_of(setup_for(tls, *common))
    assert 'SSLCACertificateFile "%s"' % tls["crt"] in conf
    assert "    SSLVerifyClient require" in conf
    conf = conf_of(setup_for(tls, *common, "--ssl-verify-client", "/admin",
                             "--ssl-environment"))
    assert re.search(r'<Location "/admin">\s+SSLVerifyClient require', conf)
    assert "    SSLVerifyClient require\n    SSLVerifyDepth 10\n@" not in conf
    assert "SSLOptions +StdEnvVars" in conf


def test_https_only_redirects_and_sends_hsts(tls):
    setup = setup_for(tls, "--https-port", "8443", "--ssl-certificate-file",
                      tls["crt"], "--ssl-certificate-key-file", tls["key"],
                      "--https-only", "--hsts-policy", "max-age=60")
    conf = conf_of(setup)
    assert "rewrite_module" in loaded(conf)
    assert "headers_module" in loaded(conf)
    assert 'RewriteRule "^" "https://%1:8443%{REQUEST_URI}" [R=301,L]' \
        in conf
    # The redirect is the main server's, before the application's rules;
    # the HSTS header is sent by the HTTPS virtual host only.
    assert conf.index("R=301") < conf.index("<VirtualHost")
    assert conf.index('Strict-Transport-Security "max-age=60"') > \
        conf.index("<VirtualHost")


def test_https_with_document_root_inherits_the_static_rules(tls):
    docs = tls["root"] / "docs"
    docs.mkdir()
    conf = conf_of(setup_for(tls, "--https-port", "8443",
                             "--ssl-certificate-file", tls["crt"],
                             "--ssl-certificate-key-file", tls["key"],
                             "--document-root", str(docs)))
    host = conf[conf.index("<VirtualHost"):]
    assert "RewriteOptions Inherit" in host


@pytest.mark.parametrize("options, message", [
    (["--https-port", "8443"], "needs a certificate and its key"),
    (["--https-only"], "--https-only needs --https-port"),
    (["--ssl-environment"], "--ssl-environment needs --https-port"),
    (["--https-port", "8000", "--ssl-certificate", "/x"],
     "must differ from --port"),
    (["--https-port", "70000"], "not a TCP port"),
    (["--https-port", "8443", "--ssl-certificate", "/nonexistent/site"],
     "--ssl-certificate-file /nonexistent/site.crt does not exist"),
])
def test_https_options_that_cannot_work_are_refused(tls, options, message):
    with pytest.raises(express.SetupError, match=re.escape(message)):
        setup_for(tls, "--port", "8000", *options)


def test_ssl_verify_client_needs_a_ca_file(tls):
    with pytest.raises(express.SetupError, match="needs --ssl-ca-cert"):
        setup_for(tls, "--https-port", "8443", "--ssl-certificate-file",
                  tls["crt"], "--ssl-certificate-key-file", tls["key"],
                  "--ssl-verify-client", "/admin")


def test_hsts_policy_without_https_only_warns(tls):
    setup = setup_for(tls, "--https-port", "8443", "--ssl-certificate-file",
                      tls["crt"], "--ssl-certificate-key-file", tls["key"],
                      "--hsts-policy", "max-age=60")
    assert "Strict-Transport-Security" not in conf_of(setup)
    assert any("--hsts-policy" in w for w in setup.warnings)


def test_http2_loads_mod_http2_where_present(layout):  # noqa: F811
    setup = setup_for(layout, "--http2")
    assert "Protocols" not in conf_of(setup)
    assert any("no mod_http2" in w for w in setup.warnings)
    (layout["modules"] / "mod_http2.so").write_bytes(b"")
    setup = setup_for(layout, "--http2")
    conf = conf_of(setup)
    assert "http2_module" in loaded(conf)
    assert "\nProtocols h2 h2c http/1.1\n" in conf
    assert not setup.warnings


def test_trusted_proxy_options_render_directives(layout):  # noqa: F811
    conf = conf_of(setup_for(layout, "--trust-proxy-header",
                             "X-Forwarded-For", "--trust-proxy-header",
                             "X-Forwarded-Proto", "--trust-proxy",
                             "127.0.0.1", "--trust-proxy", "10.0.0.0/8"))
    assert "\nWSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto\n" \
        in conf
    assert "\nWSGITrustedProxies 127.0.0.1 10.0.0.0/8\n" in conf


@pytest.mark.parametrize("options, message", [
    (["--trust-proxy-header", "X Bad"], "is not a header name"),
    (["--trust-proxy-header", "X-Real-IP", "--trust-proxy", "host.example"],
     "is not an IP address or network"),
    (["--trust-proxy", "127.0.0.1"], "--trust-proxy needs "
     "--trust-proxy-header"),
])
def test_trusted_proxy_bad_values_are_refused(layout, options,  # noqa: F811
                                              message):
    with pytest.raises(express.SetupError, match=re.escape(message)):
        setup_for(layout, *options)


@pytest.mark.parametrize("mode", [[], ["--embedded-mode"]])
def test_health_url_is_routed_before_the_application(layout,  # noqa: F811
                                                     mode):
    setup = setup_for(layout, str(layout["script"]), "--health-url",
                      "/-/health/", *mode)
    conf = conf_of(setup)
    health = conf.index('WSGIScriptAlias /-/health "%s"' % express.HEALTH_APP)
    assert health < conf.index('WSGIScriptAlias / "%s"' % layout["script"])
    line = conf[health:conf.index("\n", health)]
    assert 'application-group="%{GLOBAL}"' in line
    assert ('process-group="%s"' % setup.process_group in line) == (not mode)
    assert dict(setup.summary)["Health URL"] == "/-/health"


def test_health_url_must_be_a_path_below_root(layout):  # noqa: F811
    with pytest.raises(express.SetupError, match="--health-url"):
        setup_for(layout, "--health-url", "/")


def test_reload_on_changes_runs_the_monitor_in_daemon_mode(
        layout):  # noqa: F811
    setup = setup_for(layout, str(layout["script"]), "--reload-on-changes")
    conf = conf_of(setup)
    monitor = os.path.join(setup.server_root, "reload-monitor.py")
    assert 'WSGIImportScript "%s" process-group="%s" ' \
        'application-group="%%{GLOBAL}"' % (monitor, setup.process_group) \
        in conf
    text, mode = setup.files[monitor]
    assert mode == 0o644
    assert "tether.reloader.start(interval=1.0, skip=[%r])" \
        % str(layout["script"]) in text
    compile(text, monitor, "exec")


def test_reload_on_changes_in_embedded_mode_warns(layout):  # noqa: F811
    setup = setup_for(layout, "--reload-on-changes", "--embedded-mode")
    assert "WSGIImportScript" not in conf_of(setup)
    assert any("needs daemon mode" in w for w in setup.warnings)
    setup = setup_for(layout, "--reload-on-changes", "--disable-reloading")
    assert "WSGIImportScript" not in conf_of(setup)


# --- tether.reloader ---------------------------------------------------------

def _module(path):
    return types.SimpleNamespace(__file__=str(path), __spec__=None)


def test_reloader_watches_app_modules_not_libraries(tmp_path):
    app = tmp_path / "app"
    lib = tmp_path / "lib"
    app.mkdir()
    lib.mkdir()
    for path in (app / "views.py", app / "app.wsgi", lib / "dep.py"):
        path.write_text("x = 1\n")
    modules = {"views": _module(app / "views.py"),
               "script": _module(app / "app.wsgi"),
               "dep": _module(lib / "dep.py"),
               "builtin": types.SimpleNamespace(),
               "ext": _module(app / "fast.so")}
    found = reloader.watched_files(modules, (str(lib),),
                                   skip={str(app / "app.wsgi")})
    assert found == {str(app / "views.py")}
    # The standard library and site-packages are never watched.
    assert reloader.watched_files({"os": os, "pytest": pytest},
                                  reloader.library_dirs()) == set()


def test_reloader_reports_the_first_change_once(tmp_path):
    source = tmp_path / "views.py"
    source.write_text("x = 1\n")
    modules = {"views": _module(source)}
    changes = []
    monitor = reloader.Monitor(interval=0.01, modules=modules, excluded=(),
                               on_change=changes.append)
    assert monitor.check() is None
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert monitor.check() == str(source)
    monitor.start()
    monitor._thread.join(timeout=10)
    assert changes == [str(source)]
    assert monitor.changed == str(source)


def test_reloader_counts_a_removed_file_as_a_change(tmp_path):
    source = tmp_path / "views.py"
    source.write_text("x = 1\n")
    monitor = reloader.Monitor(modules={"views": _module(source)},
                               excluded=(), on_change=lambda path: None)
    assert monitor.check() is None
    source.unlink()
    assert monitor.check() == str(source)
