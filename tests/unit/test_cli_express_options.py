"""mod_wsgi-express start-server options about the site around the
application (host names, access and auth scripts, error documents,
handlers, static directories, compression, read timeouts, logs, locale) as
they render into httpd.conf and apachectl.  No Apache is started."""

import os
import re
import shlex
import subprocess

import pytest

from tether import cli, express, express_site
from tether.apache import MODULES
from test_render import (conf_of, daemon_process, directives,  # noqa: F401
                         layout, setup_for)


@pytest.fixture
def site(layout):  # noqa: F811
    """The layout, with every module tether-express may load, a document
    root and a hook script."""
    for module in MODULES.values():
        (layout["modules"] / module.filename).write_bytes(b"")
    docs = layout["root"] / "docs"
    docs.mkdir()
    hooks = layout["app"] / "hooks.wsgi"
    hooks.write_text("def allow_access(environ, host):\n    return True\n")
    layout["docs"] = docs
    layout["hooks"] = hooks
    return layout


def build(site, *options):
    return setup_for(site, str(site["script"]), *options)


def conf(site, *options):
    return conf_of(build(site, *options))


def loaded(text):
    return re.findall(r"^LoadModule (\w+) ", text, re.MULTILINE)


def section(text, opening):
    """The lines of the first section opened by `opening` (e.g.
    '<VirtualHost *:8000>'), up to its closing tag."""
    start = text.index(opening)
    tag = opening[1:].split()[0].rstrip(">")
    return text[start:text.index("</%s>" % tag, start)]


# --- defaults ----------------------------------------------------------------

def test_express_options_default_add_nothing(site):
    text = conf(site)
    for absent in ("EnableSendfile", "WSGIErrorOverride", "ErrorDocument",
                   "WSGIAccessScript", "WSGIAuthUserScript", "AuthType",
                   "WSGIServerMetrics", "WSGIHandlerScript", "AddHandler",
                   "VirtualHost", "RequestReadTimeout", "DEFLATE",
                   "DirectoryIndex", "ErrorLogFormat", "rotatelogs",
                   "server-metrics", "lang=", "python-eggs"):
        assert absent not in text, absent
    assert directives(text, "WSGIRestrictEmbedded") == ["On"]
    assert "AllowOverride None\n    Require all granted\n</Directory>" in text
    for module in ("deflate_module", "reqtimeout_module", "auth_basic_module",
                   "authn_core_module", "dir_module", "autoindex_module"):
        assert module not in loaded(text)


def test_express_orphan_interpreter_skips_atexit_functions(site):
    assert directives(conf(site), "WSGIDestroyInterpreter") == []
    for mode in ([], ["--embedded-mode"]):
        text = conf(site, "--orphan-interpreter", *mode)
        assert directives(text, "WSGIDestroyInterpreter") == ["Off"]


def test_express_python_warnings_one_directive_each_in_order(site):
    for mode in ([], ["--embedded-mode"]):
        text = conf(site, "--python-warnings", "error::DeprecationWarning",
                    "--python-warnings", "ignore:a message::some.module",
                    *mode)
        assert directives(text, "WSGIPythonWarnings") == [
            '"error::DeprecationWarning"', '"ignore:a message::some.module"']
    assert directives(conf(site), "WSGIPythonWarnings") == []
    with pytest.raises(express.SetupError, match="--python-warnings"):
        build(site, "--python-warnings", 'error"')


def test_express_ignore_activity_one_location_each(site):
    text = conf(site, "--ignore-activity", "/-/health", "--ignore-activity",
                "/metrics")
    for url in ("/-/health", "/metrics"):
        assert directives(section(text, '<Location "%s">' % url),
                          "WSGIIgnoreActivity") == ["On"]
    assert directives(conf(site), "WSGIIgnoreActivity") == []
    with pytest.raises(express.SetupError, match="--ignore-activity"):
        build(site, "--ignore-activity", "health")


def test_express_switch_interval_by_mode(site):
    text = conf(site, "--switch-interval", "0.002")
    assert daemon_process(text)[1]["switch-interval"] == "0.002"
    assert directives(text, "WSGISwitchInterval") == []
    embedded = conf(site, "--switch-interval", "0.25", "--embedded-mode")
    assert directives(embedded, "WSGISwitchInterval") == ["0.25"]
    assert "switch-interval" not in daemon_process(conf(site))[1]


@pytest.mark.parametrize("value", ["0", "-1", "soon", "3000"])
def test_express_switch_interval_must_be_seconds_above_zero(value, capsys):
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args(["start-server", "--switch-interval",
                                      value])
    assert "--switch-interval" in capsys.readouterr().err


# --- priority options --------------------------------------------------------

def test_express_enable_sendfile_sets_both_directives(site):
    text = conf(site, "--enable-sendfile")
    assert directives(text, "EnableSendfile") == ["On"]
    assert directives(text, "WSGIEnableSendfile") == ["On"]


def test_express_error_override_and_error_documents(site):
    text = conf(site, "--error-override", "--error-document", "404",
                "/errors/404.html", "--error-document", "500",
                "https://example.com/oops")
    assert directives(text, "WSGIErrorOverride") == ["On"]
    assert directives(text, "ErrorDocument") == [
        '404 "/errors/404.html"', '500 "https://example.com/oops"']


@pytest.mark.parametrize("status, url, message", [
    ("200", "/x", "not an error status"),
    ("abc", "/x", "not an error status"),
    ("404", "x.html", "must be a URL path"),
])
def test_express_error_document_refuses_bad_values(site, status, url,
                                                   message):
    with pytest.raises(express.SetupError, match=message):
        build(site, "--error-document", status, url)


def test_express_error_override_in_embedded_mode_warns(site):
    setup = build(site, "--error-override", "--embedded-mode")
    assert any("--error-override only applies to daemon mode" in w
               for w in setup.warnings)


def test_express_host_access_script_runs_in_apache_children(site):
    setup = build(site, "--host-access-script", str(site["hooks"]))
    text = conf_of(setup)
    block = section(text, '<Location "/">')
    assert 'WSGIAccessScript "%s"' % site["hooks"] in block
    # The hook needs Python in Apache's children, and the app's path.
    assert directives(text, "WSGIRestrictEmbedded") == ["Off"]
    assert directives(text, "WSGIPythonPath") == ['"%s"' % site["app"]]
    assert str(site["hooks"]) in [need.path for need in setup.needs]
    assert dict(setup.summary)["Host Access Script"] == str(site["hooks"])


def test_express_hook_scripts_must_exist(site):
    for option in ("--host-access-script", "--auth-user-script"):
        with pytest.raises(express.SetupError, match="does not exist"):
            build(site, option, str(site["app"] / "missing.wsgi"))


def test_express_auth_user_script_basic(site):
    text = conf(site, "--auth-user-script", str(site["hooks"]))
    block = section(text, '<Location "/">')
    assert directives(block, "AuthType") == ["Basic"]
    assert directives(block, "AuthBasicProvider") == ["wsgi"]
    assert directives(block, "AuthName") == ['"localhost:8000"']
    assert directives(block, "WSGIAuthUserScript") == [
        '"%s"' % site["hooks"]]
    assert directives(block, "Require") == ["valid-user"]
    assert {"authn_core_module", "auth_basic_module",
            "authz_user_module"} <= set(loaded(text))
    assert "auth_digest_module" not in loaded(text)
    assert directives(text, "WSGIRestrictEmbedded") == ["Off"]


def test_express_auth_type_digest_and_group_script(site):
    text = conf(site, "--auth-user-script", str(site["hooks"]),
                "--auth-type", "digest", "--auth-group-script",
                str(site["hooks"]), "--auth-group", "staff")
    block = section(text, '<Location "/">')
    assert directives(block, "AuthType") == ["Digest"]
    assert directives(block, "AuthDigestProvider") == ["wsgi"]
    assert directives(block, "WSGIAuthGroupScript") == [
        '"%s"' % site["hooks"]]
    assert directives(block, "Require") == ["valid-user",
                                            'wsgi-group "staff"']
    assert "<RequireAll>" in block
    assert "auth_digest_module" in loaded(text)


def test_express_auth_group_defaults_to_wsgi(site):
    text = conf(site, "--auth-user-script", str(site["hooks"]),
                "--auth-group-script", str(site["hooks"]))
    assert 'Require wsgi-group "wsgi"' in text


@pytest.mark.parametrize("options, message", [
    (["--auth-type", "Basic"], "--auth-type needs --auth-user-script"),
    (["--auth-group", "x"], "--auth-group needs --auth-user-script"),
    (["--auth-group-script", "HOOKS"],
     "--auth-group-script needs --auth-user-script"),
    (["--auth-user-script", "HOOKS", "--auth-group", "x"],
     "--auth-group needs --auth-group-script"),
    (["--auth-user-script", "HOOKS", "--auth-type", "NTLM"],
     "--auth-type NTLM is not one of Basic, Digest"),
])
def test_express_auth_options_refuse_incomplete_combinations(site, options,
                                                             message):
    options = [str(site["hooks"]) if o == "HOOKS" else o for o in options]
    with pytest.raises(express.SetupError, match=re.escape(message)):
        build(site, *options)


def test_express_auth_leaves_the_health_url_open(site):
    text = conf(site, "--auth-user-script", str(site["hooks"]),
                "--health-url", "/-/health/")
    assert directives(section(text, '<Location "/-/health">'),
                      "Require") == ["all granted"]
    # ... after the site-wide authentication, so that it wins.
    assert text.index('<Location "/-/health">') > text.index("AuthType")


def test_express_server_metrics_on_server_and_daemon_group(site):
    text = conf(site, "--server-metrics")
    assert directives(text, "WSGIServerMetrics") == ["On"]
    assert daemon_process(text)[1]["server-metrics"] == "On"
    embedded = conf(site, "--server-metrics", "--embedded-mode")
    assert directives(embedded, "WSGIServerMetrics") == ["On"]


def test_express_add_handler_maps_extension_in_document_root(site):
    handler = site["app"] / "markdown.wsgi"
    handler.write_text("def handle_request(environ, start_response): pass\n")
    setup = build(site, "--document-root", str(site["docs"]),
                  "--add-handler", "md", str(handler),
                  "--add-handler", ".rst", str(handler))
    text = conf_of(setup)
    docroot = section(text, '<Directory "%s">' % site["docs"])
    assert directives(docroot, "AddHandler") == [
        "tether-handler-1 .md", "tether-handler-2 .rst"]
    (first, second) = directives(text, "WSGIHandlerScript")
    words = shlex.split(first)
    assert words[:2] == ["tether-handler-1", str(handler)]
    assert dict(w.split("=", 1) for w in words[2:]) == {
        "process-group": "localhost:8000", "application-group": "%{GLOBAL}"}
    assert shlex.split(second)[0] == "tether-handler-2"
    assert str(handler) in [need.path for need in setup.needs]
    # The handlers run in the daemons: Apache's children need no Python.
    assert directives(text, "WSGIRestrictEmbedded") == ["On"]


def test_express_add_handler_embedded_names_no_process_group(site):
    text = conf(site, "--embedded-mode", "--document-root", str(site["docs"]),
                "--add-handler", ".md", str(site["hooks"]))
    (args,) = directives(text, "WSGIHandlerScript")
    assert "process-group" not in args


def test_express_add_handler_without_document_root_warns(site):
    setup = build(site, "--add-handler", ".md", str(site["hooks"]))
    assert any("--add-handler applies to files of the --document-root" in w
               for w in setup.warnings)


@pytest.mark.parametrize("extension", ["", "a b", "../x", '"md'])
def test_express_add_handler_refuses_bad_extensions(site, extension):
    with pytest.raises(express.SetupError, match="not a file name extension"):
        build(site, "--add-handler", extension, str(site["hooks"]))


# --- host names --------------------------------------------------------------

def test_express_server_name_makes_named_virtual_hosts(site):
    setup = build(site, "--server-name", "app.example.com",
                  "--server-alias", "*.example.org",
                  "--server-alias", "other.example.net")
    text = conf_of(setup)
    assert directives(text, "ServerName")[0] == "app.example.com:8000"
    hosts = re.findall(r"<VirtualHost \*:8000>(.*?)</VirtualHost>", text,
                       re.DOTALL)
    assert len(hosts) == 2
    # The first answers any other name, and refuses.
    assert directives(hosts[0], "Require") == ["all denied"]
    assert directives(hosts[1], "ServerName") == ["app.example.com"]
    assert directives(hosts[1], "ServerAlias") == [
        "*.example.org other.example.net"]
    assert dict(setup.summary)["Server URL"] == \
        "http://app.example.com:8000/"
    assert "authz_host_module" not in loaded(text)


def test_express_allow_localhost_serves_local_requests_of_other_names(site):
    text = conf(site, "--server-name", "app.example.com", "--allow-localhost")
    default = re.findall(r"<VirtualHost \*:8000>(.*?)</VirtualHost>", text,
                         re.DOTALL)[0]
    # AND-ed with the site's own rules, so it cannot bypass authentication.
    assert directives(default, "AuthMerging") == ["And"]
    assert directives(default, "Require") == ["local"]
    assert "authz_host_module" in loaded(text)


def test_express_www_server_name_redirects_the_parent_domain(site):
    text = conf(site, "--server-name", "www.example.com")
    assert "ServerName example.com\n" in text
    assert directives(text, "Redirect") == [
        'permanent "/" "http://www.example.com:8000/"']
    assert "alias_module" in loaded(text)


def test_express_server_name_virtual_hosts_inherit_rewrite_rules(site):
    text = conf(site, "--server-name", "app.example.com", "--document-root",
                str(site["docs"]))
    named = section(text, "<VirtualHost *:8000>\n    ServerName app")
    assert directives(named, "RewriteOptions") == ["Inherit"]


@pytest.mark.parametrize("options, message", [
    (["--server-alias", "x.example.com"], "--server-alias needs "
     "--server-name"),
    (["--server-name", "bad name"], "is not a host name"),
    (["--server-name", 'a"b'], "is not a host name"),
    (["--server-name", "ok.example", "--server-alias", "a*b.example"],
     "is not a host name"),
])
def test_express_server_name_refuses_bad_values(site, options, message):
    with pytest.raises(express.SetupError, match=message):
        build(site, *options)


def test_express_allow_localhost_without_server_name_warns(site):
    setup = build(site, "--allow-localhost")
    assert any("--allow-localhost only applies with --server-name" in w
               for w in setup.warnings)
    assert "VirtualHost" not in conf_of(setup)


# --- logs --------------------------------------------------------------------

def test_express_log_names_and_access_log_formats(site):
    setup = build(site, "--error-log-name", "errors.log", "--access-log",
                  "--access-log-name", "requests.log",
                  "--access-log-format", "combined")
    text = conf_of(setup)
    logs = site["server_root"] / "logs"
    assert directives(text, "ErrorLog") == ['"%s/errors.log"' % logs]
    assert directives(text, "CustomLog") == [
        '"%s/requests.log" combined' % logs]
    assert setup.error_log == str(logs / "errors.log")
    custom = conf(site, "--access-log", "--access-log-format",
                  '%h "%r" %>s')
    assert 'LogFormat "%h \\"%r\\" %>s" custom' in custom
    assert re.search(r'^CustomLog ".*access_log" custom$', custom,
                     re.MULTILINE)


def test_express_log_names_must_be_file_names(site):
    with pytest.raises(express.SetupError, match="must be a file name"):
        build(site, "--error-log-name", "../x")


def test_express_error_log_format(site):
    text = conf(site, "--error-log-format", "[%t] %M")
    assert directives(text, "ErrorLogFormat") == ['"[%t] %M"']
    with pytest.raises(express.SetupError, match="--log-format json"):
        build(site, "--error-log-format", "%M", "--log-format", "json")


def test_express_startup_log_is_httpd_dash_e(site):
    setup = build(site, "--startup-log", "--startup-log-name", "boot.log")
    path = str(site["server_root"] / "logs" / "boot.log")
    assert setup.httpd_args == ["-E", path]
    apachectl = setup.files[str(site["server_root"] / "apachectl")][0]
    assert '-f "$CONF" -E %s -k "$1"' % shlex.quote(path) in apachectl
    assert build(site, "--startup-log").httpd_args[1].endswith(
        "/logs/startup_log")
    assert build(site).httpd_args == []


def test_express_rotate_logs_pipes_through_rotatelogs(site, tmp_path):
    program = tmp_path / "bin" / "rotatelogs"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    setup = build(site, "--rotate-logs", "--access-log", "--max-log-size",
                  "20", "--rotatelogs-executable", str(program))
    text = conf_of(setup)
    logs = site["server_root"] / "logs"
    assert directives(text, "ErrorLog") == [
        '"|%s %s/error_log.%%Y-%%m-%%d-%%H_%%M_%%S 20M"' % (program, logs)]
    assert directives(text, "CustomLog") == [
        '"|%s %s/access_log.%%Y-%%m-%%d-%%H_%%M_%%S 20M" common'
        % (program, logs)]
    assert setup.error_log is None


def test_express_rotate_logs_default_size_and_conflicts(site, monkeypatch):
    monkeypatch.setattr(express_site, "find_rotatelogs",
                        lambda explicit=None: "/usr/bin/rotatelogs")
    text = conf(site, "--rotate-logs")
    assert re.search(r'^ErrorLog "\|/usr/bin/rotatelogs .* 5M"$', text,
                     re.MULTILINE)
    with pytest.raises(express.SetupError, match="--log-format json"):
        build(site, "--rotate-logs", "--log-format", "json")
    setup = build(site, "--rotate-logs", "--log-to-terminal")
    assert "rotatelogs" not in conf_of(setup)
    assert any("--rotate-logs has no effect" in w for w in setup.warnings)
    setup = build(site, "--max-log-size", "3")
    assert any("--max-log-size only applies with --rotate-logs" in w
               for w in setup.warnings)


def test_express_find_rotatelogs_names_the_package(tmp_path):
    with pytest.raises(express.SetupError, match="apache2-utils"):
        express_site.find_rotatelogs(search_path=str(tmp_path),
                                     extra_dirs=())
    with pytest.raises(express.SetupError, match="--rotatelogs-executable"):
        express_site.find_rotatelogs(str(tmp_path / "nope"))


# --- static files ------------------------------------------------------------

def test_express_directory_index_sends_directories_with_it_to_apache(site):
    text = conf(site, "--document-root", str(site["docs"]),
                "--directory-index", "index.html")
    docroot = section(text, '<Directory "%s">' % site["docs"])
    # The rules serve the index; mod_dir only adds the final /, so that a
    # directory without the index never becomes the application's URL.
    assert directives(docroot, "DirectoryIndex") == ["disabled"]
    docs = site["docs"]
    conditions = directives(text, "RewriteCond")
    assert '"%s%%{REQUEST_URI}index.html" -f' % docs in conditions
    assert '"%s%%{REQUEST_URI}/index.html" -f' % docs in conditions
    assert '"%s%%{REQUEST_URI}" -d' % docs in conditions
    assert '"^" "%s%%{REQUEST_URI}index.html" [L]' % docs in directives(
        text, "RewriteRule")
    assert "dir_module" in loaded(text)
    assert "Indexes" not in text
    setup = build(site, "--directory-index", "index.html")
    assert any("--directory-index applies to directories of the "
               "--document-root" in w for w in setup.warnings)


def test_express_directory_listing_needs_document_root(site):
    with pytest.raises(express.SetupError, match="--document-root"):
        build(site, "--directory-listing")
    text = conf(site, "--document-root", str(site["docs"]),
                "--directory-listing")
    docroot = section(text, '<Directory "%s">' % site["docs"])
    assert directives(docroot, "Options") == ["+Indexes"]
    assert {"dir_module", "autoindex_module"} <= set(loaded(text))


def test_express_allow_override(site):
    text = conf(site, "--document-root", str(site["docs"]),
                "--allow-override", "fileinfo", "--allow-override",
                "AuthConfig,Indexes")
    docroot = section(text, '<Directory "%s">' % site["docs"])
    assert directives(docroot, "AllowOverride") == [
        "FileInfo AuthConfig Indexes"]
    with pytest.raises(express.SetupError, match="--allow-override Bogus"):
        build(site, "--allow-override", "Bogus")


def test_express_compress_responses_loads_deflate_for_text_types(site):
    text = conf(site, "--compress-responses")
    (types,) = directives(text, "AddOutputFilterByType")
    assert types.split()[0] == "DEFLATE"
    assert {"text/html", "application/json", "text/css"} <= set(
        types.split()[1:])
    assert {"filter_module", "deflate_module"} <= set(loaded(text))


# --- request read timeouts ---------------------------------------------------

def test_express_read_timeouts_fill_in_mod_wsgi_express_defaults(site):
    text = conf(site, "--header-timeout", "20")
    assert directives(text, "RequestReadTimeout") == [
        "header=20-30,MinRate=500 body=15,MinRate=500"]
    assert "reqtimeout_module" in loaded(text)
    text = conf(site, "--body-max-timeout", "60", "--body-min-rate", "1000",
                "--header-timeout", "0")
    assert directives(text, "RequestReadTimeout") == [
        "header=0 body=15-60,MinRate=1000"]


@pytest.mark.parametrize("options, message", [
    (["--header-timeout", "40"], "must not be less than --header-timeout"),
    (["--header-min-rate", "0"], "--header-max-timeout needs a "
     "--header-min-rate"),
])
def test_express_read_timeouts_refuse_what_mod_reqtimeout_would(
        site, options, message):
    with pytest.raises(express.SetupError, match=message):
        build(site, *options)


def test_express_read_timeout_options_default_to_none():
    args = cli.make_parser().parse_args(["start-server"])
    for dest in express_site.READ_TIMEOUT_DEFAULTS:
        assert getattr(args, dest) is None


# --- process environment -----------------------------------------------------

def test_express_locale_and_python_eggs(site):
    setup = build(site, "--locale", "C.UTF-8", "--python-eggs",
                  str(site["root"] / "eggs"))
    options = daemon_process(conf_of(setup))[1]
    assert options["lang"] == options["locale"] == "C.UTF-8"
    assert options["python-eggs"] == str(site["root"] / "eggs")
    assert setup.environment == {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    apachectl = setup.files[str(site["server_root"] / "apachectl")][0]
    assert "LANG=C.UTF-8; export LANG\n" in apachectl
    assert "LC_ALL=C.UTF-8; export LC_ALL\n" in apachectl
    assert "WSGIPythonEggs" not in conf_of(setup)
    embedded = build(site, "--embedded-mode", "--python-eggs",
                     str(site["root"] / "eggs"))
    # Embedded mode: the directive, as mod_wsgi-express writes it, not a
    # variable in Apache's environment.
    assert embedded.environment == {}
    assert 'WSGIPythonEggs "%s"' % (site["root"] / "eggs") in conf_of(
        embedded)


def test_express_python_eggs_directory_is_made(site):
    eggs = site["root"] / "cache" / "eggs"
    setup = build(site, "--python-eggs", str(eggs))
    assert setup.owned_dirs == {str(eggs): (33, 33)}
    express.write(setup)
    assert eggs.is_dir()
    if os.geteuid() == 0:
        # Made by root: given to Apache's account, which unpacks into it.
        assert (eggs.stat().st_uid, eggs.stat().st_gid) == (33, 33)
    # An existing directory is left as it is.
    os.chmod(eggs, 0o700)
    express.write(setup)
    assert eggs.stat().st_mode & 0o777 == 0o700


def test_express_locale_refuses_spaces(site):
    with pytest.raises(express.SetupError, match="--locale"):
        build(site, "--locale", "en US")


# --- refused options ---------------------------------------------------------

def test_express_implemented_options_are_no_longer_refused():
    implemented = {
        "--enable-sendfile", "--error-override", "--host-access-script",
        "--auth-user-script", "--auth-type", "--auth-group-script",
        "--auth-group", "--server-metrics", "--error-document",
        "--add-handler", "--server-name", "--server-alias",
        "--allow-localhost", "--access-log-format", "--error-log-format",
        "--access-log-name", "--error-log-name", "--startup-log",
        "--startup-log-name", "--directory-index", "--directory-listing",
        "--allow-override", "--locale", "--python-eggs",
        "--compress-responses", "--header-timeout", "--header-max-timeout",
        "--header-min-rate", "--body-timeout", "--body-max-timeout",
        "--body-min-rate", "--rotate-logs", "--max-log-size",
        "--rotatelogs-executable", "--orphan-interpreter",
        "--envvars-script", "--shell-executable", "--initial-workers",
        "--minimum-spare-workers", "--maximum-spare-workers", "--with-cgi",
        "--proxy-mount-point", "--proxy-timeout", "--python-warnings",
        "--switch-interval", "--ignore-activity"}
    assert not implemented & set(cli.UNSUPPORTED)


def test_express_every_refusal_says_why_and_not_yet():
    for name, (nargs, reason) in cli.UNSUPPORTED.items():
        assert nargs in (0, 1, 2), name
        assert reason and "yet" not in reason, name


# --- apachectl's shell and environment script --------------------------------

def test_express_shell_executable_and_envvars_script(site, tmp_path):
    envvars = tmp_path / "envvars"
    envvars.write_text("GREETING=hello; export GREETING\n")
    setup = build(site, "--shell-executable", "sh", "--envvars-script",
                  str(envvars))
    apachectl = setup.files[str(site["server_root"] / "apachectl")][0]
    first = apachectl.splitlines()[0]
    assert first.startswith("#!/") and first.endswith("/sh")
    assert "\n. %s\n" % shlex.quote(str(envvars)) in apachectl
    assert setup.envvars_script == str(envvars)
    default = build(site)
    text = default.files[str(site["server_root"] / "apachectl")][0]
    assert text.startswith("#!/bin/sh\n")
    assert default.envvars_script is None
    with pytest.raises(express.SetupError, match="--envvars-script"):
        build(site, "--envvars-script", str(tmp_path / "missing"))
    with pytest.raises(express.SetupError, match="--shell-executable"):
        build(site, "--shell-executable", str(tmp_path / "nosh"))


def test_express_sourcing_command_execs_apache_after_the_script(tmp_path):
    envvars = tmp_path / "envvars"
    envvars.write_text("GREETING=hello; export GREETING\n")
    command = cli.sourcing_command(
        ["/bin/sh", "-c", 'echo "$GREETING $$ $0"', "argv0"], str(envvars))
    out = subprocess.run(command, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out[0] == "hello" and out[2] == "argv0"


# --- Apache's spare workers --------------------------------------------------

def test_express_worker_fractions_size_the_threaded_mpm(site):
    text = conf(site, "--max-clients", "200", "--initial-workers", "0.5",
                "--minimum-spare-workers", "0.2",
                "--maximum-spare-workers", "0.6")
    assert directives(text, "ThreadsPerChild") == ["25"]
    assert directives(text, "MaxRequestWorkers") == ["200"]
    assert directives(text, "StartServers") == ["4"]
    assert directives(text, "MinSpareThreads") == ["40"]
    assert directives(text, "MaxSpareThreads") == ["120"]


def test_express_worker_fractions_keep_room_for_a_process(site):
    text = conf(site, "--max-clients", "100", "--minimum-spare-workers",
                "0.5", "--maximum-spare-workers", "0.1")
    threads = int(directives(text, "ThreadsPerChild")[0])
    assert directives(text, "MaxSpareThreads") == [str(50 + threads)]


def test_express_worker_fractions_prefork_and_embedded(site):
    text = conf(site, "--server-mpm", "prefork", "--max-clients", "40",
                "--initial-workers", "0.25", "--minimum-spare-workers",
                "0.1")
    assert directives(text, "StartServers") == ["10"]
    assert directives(text, "MinSpareServers") == ["4"]
    setup = build(site, "--embedded-mode", "--initial-workers", "0.5")
    assert any("--initial-workers only applies to daemon mode" in w
               for w in setup.warnings)


def test_express_worker_fractions_must_be_fractions(capsys):
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args(["start-server", "--initial-workers",
                                      "2"])
    assert "is not from 0 to 1" in capsys.readouterr().err


# --- CGI and proxying --------------------------------------------------------

def test_express_with_cgi_runs_cgi_files_of_the_document_root(site):
    with pytest.raises(express.SetupError, match="--document-root"):
        build(site, "--with-cgi")
    text = conf(site, "--with-cgi", "--document-root", str(site["docs"]))
    docroot = section(text, '<Directory "%s">' % site["docs"])
    assert directives(docroot, "Options") == ["+ExecCGI"]
    assert directives(docroot, "AddHandler") == ["cgi-script .cgi"]
    assert "cgid_module" in loaded(text)
    prefork = conf(site, "--with-cgi", "--document-root", str(site["docs"]),
                   "--server-mpm", "prefork")
    assert "cgi_module" in loaded(prefork)
    assert "cgid_module" not in loaded(prefork)


def test_express_proxy_mount_point(site):
    text = conf(site, "--proxy-mount-point", "/api", "http://10.0.0.1:8080/",
                "--proxy-mount-point", "/secure", "https://example.com/x")
    assert directives(text, "ProxyPass") == [
        '"/api" "http://10.0.0.1:8080/"', '"/secure" "https://example.com/x"']
    assert directives(text, "ProxyPassReverse") == directives(text,
                                                              "ProxyPass")
    # --socket-timeout's value, as mod_wsgi-express.
    assert directives(text, "ProxyTimeout") == ["60"]
    assert directives(text, "SSLProxyEngine") == ["On"]
    assert {"proxy_module", "proxy_http_module",
            "ssl_module"} <= set(loaded(text))
    plain = conf(site, "--proxy-mount-point", "/api", "http://backend/",
                 "--proxy-timeout", "300")
    assert directives(plain, "ProxyTimeout") == ["300"]
    assert "SSLProxyEngine" not in plain and "ssl_module" not in loaded(plain)


@pytest.mark.parametrize("url, target", [
    ("api", "http://backend/"), ("/api", "ftp://backend/"),
    ("/api", "backend"), ("/api", 'http://a"b/')])
def test_express_proxy_mount_point_refuses_bad_values(site, url, target):
    with pytest.raises(express.SetupError, match="--proxy-mount-point"):
        build(site, "--proxy-mount-point", url, target)


def test_express_proxy_timeout_alone_warns(site):
    setup = build(site, "--proxy-timeout", "10")
    assert any("--proxy-timeout only applies" in w for w in setup.warnings)
    assert "ProxyTimeout" not in conf_of(setup)
