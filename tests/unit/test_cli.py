"""tether-express's argument parsing: subcommands, option names and
defaults (mod_wsgi-express's), and refusal of options not implemented."""

import argparse

import pytest

from tether import cli


def parse(*argv):
    return cli.make_parser().parse_args(list(argv))


def server_parsers():
    parser = cli.make_parser()
    sub = next(a for a in parser._actions
               if isinstance(a, argparse._SubParsersAction))
    return sub.choices["setup-server"], sub.choices["start-server"]


def visible_options(parser):
    return {opt for action in parser._actions
            if action.help is not argparse.SUPPRESS
            for opt in action.option_strings}


def test_cli_start_server_defaults_follow_mod_wsgi_express():
    args = parse("start-server")
    assert args.script is None and args.entry_point is None
    assert args.application_type == "script"
    assert args.callable_object == "application"
    assert args.mount_point == "/"
    assert args.application_group == "%{GLOBAL}"
    assert args.host is None
    assert args.port == 8000
    assert args.processes == 1
    assert args.threads == 5
    assert args.max_clients is None
    assert args.server_mpm is None
    assert args.log_level == "warn"
    assert args.limit_request_body == 10485760
    assert args.keep_alive_timeout == 2
    assert args.map_head_to_get == "auto"
    assert args.server_root is None and args.working_directory is None
    for flag in ("log_to_terminal", "access_log", "reload_on_changes",
                 "disable_reloading", "chunked_request", "setup_only",
                 "embedded_mode"):
        assert getattr(args, flag) is False, flag
    for repeatable in ("url_alias", "python_path", "setenv", "passenv",
                       "include_file"):
        assert getattr(args, repeatable) is None, repeatable
    assert args.server_backlog == 500
    assert args.process_group is None and args.process_name is None
    assert args.socket_prefix is None


# mod_wsgi-express 6.1.1's defaults (`mod_wsgi-express start-server --help`
# and the httpd.conf of `setup-server` without options), option by option.
MOD_WSGI_EXPRESS_DEFAULTS = {
    "processes": 1, "threads": 5, "request_timeout": 60,
    "startup_timeout": 15, "queue_timeout": 45, "socket_timeout": 60,
    "connect_timeout": 15, "response_socket_timeout": 0,
    "deadlock_timeout": 60, "inactivity_timeout": 0, "maximum_requests": 0,
    "restart_interval": 0, "cpu_time_limit": 0, "graceful_timeout": 15,
    "eviction_timeout": 0, "shutdown_timeout": 5, "daemon_backlog": 100,
    "server_backlog": 500, "send_buffer_size": 0, "receive_buffer_size": 0,
    "header_buffer_size": 0, "response_buffer_size": 0,
}


def test_cli_daemon_mode_is_the_default_with_mod_wsgi_express_values():
    args = parse("start-server")
    assert args.embedded_mode is False
    for dest, value in MOD_WSGI_EXPRESS_DEFAULTS.items():
        assert getattr(args, dest) == value, dest
    assert parse("start-server", "--embedded-mode").embedded_mode is True


def test_cli_daemon_options_take_whole_numbers(capsys):
    args = parse("start-server", "--maximum-requests", "3",
                 "--request-timeout", "2", "--process-group", "site",
                 "--process-name", "web", "--socket-prefix", "/run/x",
                 "--daemon-backlog", "7", "--server-backlog", "9")
    assert (args.maximum_requests, args.request_timeout,
            args.daemon_backlog, args.server_backlog) == (3, 2, 7, 9)
    assert (args.process_group, args.process_name, args.socket_prefix) == \
        ("site", "web", "/run/x")
    with pytest.raises(SystemExit):
        parse("start-server", "--request-timeout", "1.5")
    assert "'1.5' is not a whole number" in capsys.readouterr().err


def test_cli_memory_limit_defaults_to_none_and_takes_bytes(capsys):
    """--memory-limit (WSGIDaemonProcess memory-limit=): 0, no limit, unless
    given; a whole number of bytes."""
    assert parse("start-server").memory_limit == 0
    assert parse("setup-server").memory_limit == 0
    assert parse("start-server", "--memory-limit",
                 "200000000").memory_limit == 200000000
    with pytest.raises(SystemExit):
        parse("start-server", "--memory-limit", "100M")
    assert "'100M' is not a whole number" in capsys.readouterr().err
    setup, start = server_parsers()
    for parser in (setup, start):
        action = next(a for a in parser._actions
                      if "--memory-limit" in a.option_strings)
        assert "1048576" in action.help and "(default: 0)" in action.help


# What each daemon transport option does in mod_tether (tether_client.c,
# tether_dserver.c, tether_conn.c): their help must say so, not that
# they are passed on unused.
TRANSPORT_HELP = {
    "--send-buffer-size": ("SO_SNDBUF", "both ends"),
    "--receive-buffer-size": ("SO_RCVBUF", "both ends"),
    "--response-buffer-size": ("flush", "65536"),
    "--response-socket-timeout": ("cut off", "--socket-timeout"),
}


def test_cli_transport_options_help_says_what_they_do():
    setup, start = server_parsers()
    for parser in (setup, start):
        helps = {o: a.help for a in parser._actions
                 for o in a.option_strings}
        for option, words in TRANSPORT_HELP.items():
            text = " ".join(helps[option].split())
            assert "not used" not in text and "does not use" not in text, \
                option
            assert "passed on;" not in text, option
            for word in words:
                assert word in text, (option, word)


def test_cli_setup_and_start_server_share_every_option():
    setup, start = server_parsers()
    assert visible_options(setup) == visible_options(start)
    assert {"--port", "--host", "--url-alias", "--document-root",
            "--callable-object", "--application-type", "--entry-point",
            "--working-directory", "--python-path", "--server-root",
            "--log-to-terminal", "--log-level", "--access-log",
            "--processes", "--threads", "--max-clients", "--server-mpm",
            "--user", "--group", "--setenv", "--passenv",
            "--limit-request-body", "--keep-alive-timeout",
            "--reload-on-changes", "--setup-only", "--httpd-executable",
            "--modules-directory", "--include-file",
            "--embedded-mode", "--process-group", "--process-name",
            "--socket-prefix", "--server-backlog", "--daemon-backlog",
            "--maximum-requests", "--startup-timeout", "--shutdown-timeout",
            "--restart-interval", "--cpu-time-limit", "--memory-limit",
            "--graceful-timeout",
            "--eviction-timeout", "--deadlock-timeout",
            "--inactivity-timeout", "--request-timeout", "--connect-timeout",
            "--socket-timeout", "--queue-timeout", "--send-buffer-size",
            "--receive-buffer-size", "--header-buffer-size",
            "--response-buffer-size",
            "--response-socket-timeout", "--https-port",
            "--ssl-certificate-file", "--ssl-certificate-key-file",
            "--ssl-certificate", "--ssl-certificate-chain-file",
            "--ssl-ca-certificate-file", "--ssl-verify-client",
            "--ssl-environment", "--https-only", "--hsts-policy",
            "--http2", "--trust-proxy-header", "--trust-proxy",
            "--health-url"} <= visible_options(start)


def test_cli_every_option_documents_its_default():
    setup, start = server_parsers()
    for action in start._actions:
        if action.help is argparse.SUPPRESS or not action.option_strings \
                or action.option_strings == ["-h", "--help"]:
            continue
        assert "default" in action.help, action.option_strings
    help_text = start.format_help()
    assert "(default: 8000)" in help_text
    assert "(default: 10485760)" in help_text
    assert "--request-timeout SECONDS" in help_text
    assert "--header-buffer-size BYTES" in help_text
    assert "--interrupt-timeout" not in help_text   # refused: hidden
    assert "--https-port NUMBER" in help_text


def test_cli_repeatable_options_accumulate():
    args = parse("start-server", "app.wsgi",
                 "--url-alias", "/static", "/srv/static",
                 "--url-alias", "/media", "/srv/media",
                 "--setenv", "A", "1", "--setenv", "B", "two words",
                 "--passenv", "HOME", "--passenv", "LANG",
                 "--python-path", "/srv/lib", "--python-path", "/srv/lib2",
                 "--include-file", "/etc/a.conf", "--include-file", "b.conf")
    assert args.script == "app.wsgi"
    assert args.url_alias == [["/static", "/srv/static"],
                              ["/media", "/srv/media"]]
    assert args.setenv == [["A", "1"], ["B", "two words"]]
    assert args.passenv == ["HOME", "LANG"]
    assert args.python_path == ["/srv/lib", "/srv/lib2"]
    assert args.include_file == ["/etc/a.conf", "b.conf"]


def test_cli_values_are_converted_and_checked():
    args = parse("setup-server", "--port", "8080", "--processes", "3",
                 "--threads", "10", "--max-clients", "40",
                 "--server-mpm", "prefork", "--map-head-to-get", "ON",
                 "--application-type", "module", "--log-level", "trace3")
    assert (args.port, args.processes, args.threads, args.max_clients) == \
        (8080, 3, 10, 40)
    assert args.server_mpm == "prefork"
    assert args.map_head_to_get == "on"
    assert args.application_type == "module"
    assert args.log_level == "trace3"


@pytest.mark.parametrize("argv, message", [
    (["--port", "http"], "'http' is not a whole number"),
    (["--server-mpm", "winnt"], "invalid choice: 'winnt'"),
    (["--application-type", "paste"], "invalid choice: 'paste'"),
    (["--log-level", "loud"], "invalid choice: 'loud'"),
    (["--url-alias", "/only-url"], "expected 2 arguments"),
])
def test_cli_bad_values_exit_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse("start-server", *argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, reason", [
    (["--enable-debugger"], "Tether has no in-process debugger"),
    (["--interrupt-timeout", "5"], "cannot interrupt one request's thread"),
    (["--debug-mode"], "no single-process debug mode"),
    (["--service-script", "tasks", "tasks.py"],
     "no managed service processes"),
    (["--response-flush-delay", "0"], "no flush delay"),
])
def test_cli_unsupported_mod_wsgi_express_options_are_refused_by_name(
        argv, reason, capsys):
    with pytest.raises(SystemExit) as e:
        parse("start-server", "app.wsgi", *argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "%s is a mod_wsgi-express option that tether-express does not " \
        "support: " % argv[0] in err
    assert reason in err
    assert "Traceback" not in err


def test_cli_every_refused_option_is_known_to_argparse():
    start = server_parsers()[1]
    known = {opt for action in start._actions for opt in action.option_strings}
    assert set(cli.UNSUPPORTED) <= known
    # None of them shadows an option tether-express implements.
    assert not set(cli.UNSUPPORTED) & visible_options(start)


def test_cli_unknown_and_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse("start-server", "--no-such-option")
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("start-server", "--proc", "2")     # no prefix matching
    assert "unrecognized arguments" in capsys.readouterr().err


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as e:
        parse()
    assert e.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_cli_install_module_takes_a_modules_directory():
    args = parse("install-module", "--modules-directory", "/opt/mods")
    assert args.modules_directory == "/opt/mods"
    assert parse("module-config").command == "module-config"
    assert parse("module-location").command == "module-location"
