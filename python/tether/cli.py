"""tether-express: run a WSGI application in Apache httpd with mod_tether,
from the command line, the way mod_wsgi-express does with mod_wsgi.

    tether-express start-server app.wsgi --port 8000
    tether-express setup-server app.wsgi --server-root /srv/app-httpd
    tether-express module-config >> /etc/apache2/mods-available/tether.load

Option names and defaults follow mod_wsgi-express.  Its options that
tether-express cannot implement (debug mode, telemetry...) are recognised
and refused with a message naming them and saying why, rather than being
taken for something else.
"""

import argparse
import collections
import os
import pwd
import shutil
import sys

import tether

from . import __version__, supervise
from .access import find_unreadable, resolve_account
from .apache import Apache, ApacheError, find_modules_dir
from .express import (DAEMON_DEFAULTS, LOG_LEVELS, SetupError, build,
                      module_config_lines, summary_text, write)
from .express_site import DEFAULT_MAX_LOG_SIZE, READ_TIMEOUT_DEFAULTS
from .render import TemplateError

PROG = "tether-express"

# mod_wsgi-express options tether-express refuses: name -> (number of
# values, why).
_NO_DEBUG_MODE = ("tether-express has no single-process debug mode with the "
                  "console attached")
_NO_TELEMETRY = "Tether does not implement mod_wsgi's telemetry service"
_NO_SERVICES = ("Tether has no managed service processes: run the service "
                "under systemd or another supervisor")
UNSUPPORTED = {
    "--enable-telemetry": (0, _NO_TELEMETRY),
    "--telemetry-service": (1, _NO_TELEMETRY),
    "--telemetry-ui-port": (1, _NO_TELEMETRY),
    "--telemetry-interval": (1, _NO_TELEMETRY),
    "--telemetry-options": (1, _NO_TELEMETRY),
    "--slow-requests": (1, "it feeds mod_wsgi's telemetry service, which "
                           "Tether does not implement"),
    "--free-threading": (0, "Tether does not support free-threaded Python "
                            "builds"),
    "--debug-mode": (0, _NO_DEBUG_MODE),
    "--enable-debugger": (0, "Tether has no in-process debugger"),
    "--debugger-startup": (0, "Tether has no in-process debugger"),
    "--enable-coverage": (0, "Tether has no built-in coverage collection"),
    "--coverage-directory": (1, "Tether has no built-in coverage "
                                "collection"),
    "--enable-profiler": (0, "Tether has no built-in profiler"),
    "--profiler-directory": (1, "Tether has no built-in profiler"),
    "--enable-recorder": (0, "Tether has no request recorder"),
    "--recorder-directory": (1, "Tether has no request recorder"),
    "--enable-gdb": (0, "tether-express does not run Apache under gdb "
                        "(%s)" % _NO_DEBUG_MODE),
    "--gdb-executable": (1, "tether-express does not run Apache under gdb "
                            "(%s)" % _NO_DEBUG_MODE),
    "--enable-docs": (0, "Tether does not bundle mod_wsgi's documentation"),
    "--service-script": (2, _NO_SERVICES),
    "--service-user": (2, _NO_SERVICES),
    "--service-group": (2, _NO_SERVICES),
    "--service-log-file": (2, _NO_SERVICES),
    "--interrupt-timeout": (1, "Tether cannot interrupt one request's "
                               "thread: a --request-timeout restarts the "
                               "process"),
    "--response-flush-delay": (1, "Tether passes the response on as the "
                                  "application yields it, with no flush "
                                  "delay to tune"),
    "--rewrite-rules": (1, "tether-express serves the application through "
                           "WSGIScriptAlias, not from the document root's "
                           "<Directory> these rules are written for: put "
                           "rewrite rules in an --include-file"),
    "--proxy-virtual-host": (2, "tether-express does not make proxying "
                                "virtual hosts: put a <VirtualHost> with "
                                "ProxyPass in an --include-file"),
}


class _Unsupported(argparse.Action):
    """A mod_wsgi-express option tether-express refuses, by name, saying
    why."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("%s is a mod_wsgi-express option that tether-express "
                     "does not support: %s"
                     % (option_string, UNSUPPORTED[option_string][1]))


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("%r is not from 0 to 1" % text)
    return value


def _interval(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not 1e-6 <= value <= 2147:
        raise argparse.ArgumentTypeError("%r is not a number of seconds "
                                         "above 0 (at most 2147)" % text)
    return value


def _count(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)


# The numeric daemon process options: name, metavar, help; their defaults,
# mod_wsgi-express's, are express.DAEMON_DEFAULTS.  Each becomes the
# WSGIDaemonProcess option of the same name, but --daemon-backlog, which is
# listen-backlog.
_DAEMON_NUMBERS = (
    ("--request-timeout", "SECONDS",
     "seconds a request may run; then it fails with 504 and its process is "
     "restarted once its other requests finish"),
    ("--startup-timeout", "SECONDS",
     "seconds after its start within which a process that dies counts as "
     "failing to start: it is restarted after a growing delay, so that a "
     "broken application does not restart in a loop"),
    ("--queue-timeout", "SECONDS",
     "seconds a request may wait for a free daemon thread; then it fails "
     "with 504"),
    ("--socket-timeout", "SECONDS",
     "seconds a read or write between Apache and a daemon process may "
     "block; then the request fails (504 before the response started)"),
    ("--connect-timeout", "SECONDS",
     "seconds Apache keeps trying to connect to a busy daemon process "
     "group; then the request fails with 503"),
    ("--response-socket-timeout", "SECONDS",
     "seconds Apache's child may wait on the client while it passes on a "
     "request to a daemon process and its response (reading the request "
     "body, writing the response); a client that stops reading for longer "
     "is cut off.  0 for --socket-timeout's value"),
    ("--deadlock-timeout", "SECONDS",
     "seconds a process may hold Python's GIL without letting go before it "
     "is restarted"),
    ("--inactivity-timeout", "SECONDS",
     "seconds without any request after which a process is restarted"),
    ("--maximum-requests", "NUMBER",
     "requests after which a process is restarted (gracefully)"),
    ("--restart-interval", "SECONDS",
     "seconds after which each process is restarted (gracefully)"),
    ("--cpu-time-limit", "SECONDS",
     "seconds of CPU time after which a process is restarted (gracefully)"),
    ("--memory-limit", "BYTES",
     "resident memory, in bytes, above which a process is restarted "
     "(gracefully, after the request that passed it); at least 1048576 "
     "(1 MiB), 0 for no limit"),
    ("--graceful-timeout", "SECONDS",
     "seconds a process being restarted keeps serving its requests in "
     "flight before it shuts down"),
    ("--eviction-timeout", "SECONDS",
     "seconds a process asked to restart by a graceful restart of Apache "
     "(or SIGUSR1) keeps serving its requests; 0 for --graceful-timeout's "
     "value"),
    ("--shutdown-timeout", "SECONDS",
     "seconds a process that shuts down may take before it is killed"),
    ("--daemon-backlog", "NUMBER",
     "connections from Apache queued for a daemon process group before "
     "Apache has to retry (listen-backlog)"),
    ("--send-buffer-size", "BYTES",
     "send buffer size (SO_SNDBUF) of each Unix socket connection between "
     "Apache's children and the daemon processes, set on both ends; at "
     "least 512, 0 for the system's default"),
    ("--receive-buffer-size", "BYTES",
     "receive buffer size (SO_RCVBUF) of each Unix socket connection "
     "between Apache's children and the daemon processes, set on both "
     "ends; at least 512, 0 for the system's default"),
    ("--header-buffer-size", "BYTES",
     "largest response head, in bytes, a daemon process may send; 0 for "
     "32768"),
    ("--response-buffer-size", "BYTES",
     "most bytes of a daemon process's response Apache's child gathers "
     "while more is already waiting, before it passes them to the client "
     "with a flush (it flushes earlier whenever nothing more is waiting); "
     "at least 65536, 0 for 65536"),
)


def _add_apache_options(parser):
    group = parser.add_argument_group("Apache installation")
    group.add_argument(
        "--httpd-executable", metavar="FILE-PATH",
        help="Apache's httpd binary (default: apache2 or httpd on PATH, "
             "then in /usr/sbin)")
    group.add_argument(
        "--modules-directory", metavar="DIRECTORY-PATH",
        help="Apache's modules directory (default: the first of "
             "/usr/lib/apache2/modules, /usr/lib64/httpd/modules, "
             "/usr/lib/httpd/modules, /usr/local/apache2/modules... "
             "that exists)")
    group.add_argument(
        "--mime-types", metavar="FILE-PATH",
        help="MIME types file for TypesConfig (default: /etc/mime.types, "
             "/etc/apache2/mime.types or /etc/httpd/conf/mime.types, else "
             "/dev/null)")


def _add_site_options(parser):
    """mod_wsgi-express's options about the site around the application
    (rendered by tether.express_site)."""
    names = parser.add_argument_group("Host names")
    names.add_argument(
        "--server-name", metavar="HOSTNAME",
        help="the site's host name (ServerName): requests naming another "
             "host are refused with 403; a name starting with www. also "
             "redirects the parent domain to it (default: none, every host "
             "name is served)")
    names.add_argument(
        "--server-alias", metavar="HOSTNAME", action="append",
        help="another host name of the site, may hold * wildcards "
             "(ServerAlias); repeatable; needs --server-name (default: none)")
    names.add_argument(
        "--allow-localhost", action="store_true",
        help="with --server-name, still serve requests naming another host "
             "when they come from this machine (default: off)")

    access = parser.add_argument_group(
        "Access and authentication",
        "These scripts run in Apache's children (so Python starts there "
        "too), in the main interpreter, for every request of the site.")
    access.add_argument(
        "--host-access-script", metavar="SCRIPT-PATH",
        help="a script whose allow_access(environ, host) decides who may "
             "reach the site (WSGIAccessScript) (default: none)")
    access.add_argument(
        "--auth-user-script", metavar="SCRIPT-PATH",
        help="a script that authenticates every request's user "
             "(WSGIAuthUserScript): check_password(environ, user, password) "
             "for Basic, get_realm_hash(environ, user, realm) for Digest; "
             "--health-url stays open (default: none)")
    access.add_argument(
        "--auth-type", metavar="TYPE",
        help="Basic or Digest, with --auth-user-script (default: Basic)")
    access.add_argument(
        "--auth-group-script", metavar="SCRIPT-PATH",
        help="a script whose groups_for_user(environ, user) must name "
             "--auth-group (WSGIAuthGroupScript, Require wsgi-group); needs "
             "--auth-user-script (default: none)")
    access.add_argument(
        "--auth-group", metavar="NAME",
        help="the group --auth-group-script must find the user in "
             "(default: wsgi)")

    site = parser.add_argument_group("Responses and static files")
    site.add_argument(
        "--error-override", action="store_true",
        help="in daemon mode, replace the application's error responses "
             "(400 and up) by Apache's, so --error-document applies to them "
             "(WSGIErrorOverride) (default: off)")
    site.add_argument(
        "--error-document", nargs=2, metavar=("STATUS", "URL-PATH"),
        action="append",
        help="the URL Apache serves for responses of an error status "
             "(ErrorDocument); repeatable (default: none)")
    site.add_argument(
        "--add-handler", nargs=2, metavar=("EXTENSION", "SCRIPT-PATH"),
        action="append",
        help="files of --document-root with this extension are handled by "
             "handle_request(environ, start_response) of the script "
             "(WSGIHandlerScript, AddHandler), in the application's process "
             "group; repeatable (default: none)")
    site.add_argument(
        "--directory-index", metavar="FILE-NAME",
        help="a URL naming a directory of --document-root that holds this "
             "file is served that file by Apache, as DirectoryIndex would, "
             "instead of going to the application (default: none)")
    site.add_argument(
        "--directory-listing", action="store_true",
        help="every URL naming a directory of --document-root (including "
             "/) is served by Apache: its --directory-index file, else a "
             "listing (default: off)")
    site.add_argument(
        "--allow-override", metavar="DIRECTIVE-TYPE", action="append",
        help="directive types .htaccess files in --document-root may set "
             "(AllowOverride), e.g. FileInfo or All; repeatable (default: "
             "None, .htaccess files are ignored)")
    site.add_argument(
        "--with-cgi", action="store_true",
        help="run the executable *.cgi files of --document-root as CGI "
             "scripts (mod_cgid, or mod_cgi under prefork) (default: off)")
    site.add_argument(
        "--proxy-mount-point", nargs=2, metavar=("URL-PATH", "URL"),
        action="append",
        help="pass requests under URL-PATH on to another server at URL "
             "(mod_proxy's ProxyPass and ProxyPassReverse); repeatable "
             "(default: none)")
    site.add_argument(
        "--proxy-timeout", type=_count, metavar="SECONDS",
        help="seconds mod_proxy waits for those servers (ProxyTimeout) "
             "(default: --socket-timeout's value)")
    site.add_argument(
        "--compress-responses", action="store_true",
        help="compress text responses (HTML, CSS, JavaScript, JSON, XML, "
             "plain text) with gzip for clients that accept it "
             "(mod_deflate) (default: off)")
    site.add_argument(
        "--enable-sendfile", action="store_true",
        help="send static files and the application's wsgi.file_wrapper "
             "files with sendfile() (EnableSendfile, WSGIEnableSendfile); "
             "only where the kernel and file system support it "
             "(default: off)")

    reads = parser.add_argument_group(
        "Request read timeouts",
        "mod_reqtimeout's RequestReadTimeout: giving any of these loads it, "
        "with the defaults below for the others; without them Apache's "
        "Timeout (60 seconds) applies.  0 turns a timeout or rate off.")
    for name, metavar, text in (
            ("--header-timeout", "SECONDS",
             "seconds to receive the request line and headers"),
            ("--header-max-timeout", "SECONDS",
             "most seconds the header timeout may grow to"),
            ("--header-min-rate", "BYTES",
             "bytes of headers that add a second to the header timeout"),
            ("--body-timeout", "SECONDS",
             "seconds to receive the request body"),
            ("--body-max-timeout", "SECONDS",
             "most seconds the body timeout may grow to, 0 for no limit"),
            ("--body-min-rate", "BYTES",
             "bytes of body that add a second to the body timeout")):
        default = READ_TIMEOUT_DEFAULTS[name[2:].replace("-", "_")]
        reads.add_argument(name, type=_count, metavar=metavar,
                           help="%s (default: %d)" % (text, default))

    logs = parser.add_argument_group("Log names, formats and rotation")
    logs.add_argument(
        "--error-log-name", metavar="FILE-NAME",
        help="name of the error log in the log directory "
             "(default: error_log)")
    logs.add_argument(
        "--access-log-name", metavar="FILE-NAME",
        help="name of the access log in the log directory "
             "(default: access_log)")
    logs.add_argument(
        "--access-log-format", metavar="FORMAT",
        help="format of the access log's lines: common, combined or an "
             "Apache LogFormat string (default: common)")
    logs.add_argument(
        "--error-log-format", metavar="FORMAT",
        help="format of the error log's lines (ErrorLogFormat) (default: "
             "Apache's)")
    logs.add_argument(
        "--startup-log", action="store_true",
        help="write Apache's start-up errors to a log file of their own "
             "(httpd -E) (default: off)")
    logs.add_argument(
        "--startup-log-name", metavar="FILE-NAME",
        help="name of that file in the log directory (default: "
             "startup_log)")
    logs.add_argument(
        "--rotate-logs", action="store_true",
        help="write the logs through Apache's rotatelogs, which starts a new "
             "file, named with the time, when one reaches --max-log-size "
             "(default: off)")
    logs.add_argument(
        "--max-log-size", type=_count, metavar="MB",
        help="megabytes after which --rotate-logs starts a new file "
             "(default: %d)" % DEFAULT_MAX_LOG_SIZE)
    logs.add_argument(
        "--rotatelogs-executable", metavar="FILE-PATH",
        help="the rotatelogs program (default: rotatelogs on PATH or in "
             "/usr/bin, /usr/sbin)")

    env = parser.add_argument_group("Process environment")
    env.add_argument(
        "--locale", metavar="NAME",
        help="the locale of Apache and the daemon processes (LANG and "
             "LC_ALL; lang= and locale= of WSGIDaemonProcess), e.g. "
             "C.UTF-8 (default: the environment's)")
    env.add_argument(
        "--python-eggs", metavar="DIRECTORY-PATH",
        help="where Python eggs are unpacked (python-eggs= of "
             "WSGIDaemonProcess; PYTHON_EGG_CACHE in embedded mode) "
             "(default: none)")
    env.add_argument(
        "--server-metrics", action="store_true",
        help="let the application's mod_wsgi.server_metrics() report "
             "Tether's process table (WSGIServerMetrics On, server-metrics=On "
             "of WSGIDaemonProcess) (default: off)")
    env.add_argument(
        "--envvars-script", metavar="FILE-PATH",
        help="a shell script sourced before Apache starts (by start-server "
             "and apachectl), to set environment variables (default: none)")
    env.add_argument(
        "--shell-executable", metavar="FILE-PATH",
        help="the shell the apachectl script runs with (default: /bin/sh)")
    env.add_argument(
        "--orphan-interpreter", action="store_true",
        help="do not run the interpreters' atexit functions when a process "
             "exits (WSGIDestroyInterpreter Off); shutdown subscribers still "
             "run (default: off)")
    env.add_argument(
        "--ignore-activity", metavar="URL-PATH", action="append",
        help="requests under this URL path, such as a health check, do not "
             "count as activity for --inactivity-timeout "
             "(WSGIIgnoreActivity On); may be repeated (default: none)")
    env.add_argument(
        "--python-warnings", metavar="SPEC", action="append",
        help="a warnings filter for the application's Python, as python -W "
             "(action:message:category:module:lineno), e.g. "
             "error::DeprecationWarning; may be repeated "
             "(WSGIPythonWarnings) (default: none)")
    env.add_argument(
        "--switch-interval", metavar="SECONDS", type=_interval,
        help="Python's thread switch interval, sys.setswitchinterval() "
             "(switch-interval= of WSGIDaemonProcess; WSGISwitchInterval in "
             "embedded mode) (default: Python's, 0.005)")


def _add_server_options(parser):
    """The options setup-server and start-server share."""
    parser.add_argument(
        "script", nargs="?", metavar="script",
        help="the WSGI script file (or module name with --application-type "
             "module) (default: none, serving tether's default page)")

    app = parser.add_argument_group("Application")
    app.add_argument(
        "--entry-point", metavar="FILE-PATH|MODULE",
        help="the WSGI script or module, as an option; takes precedence "
             "over the positional script (default: the positional script)")
    app.add_argument(
        "--application-type", choices=("script", "module"), default="script",
        help="script: the entry point is a WSGI script file; module: a "
             "Python module name imported from the working directory and "
             "--python-path (default: script)")
    app.add_argument(
        "--callable-object", metavar="NAME", default="application",
        help="name of the WSGI callable in the script or module "
             "(default: application)")
    app.add_argument(
        "--mount-point", metavar="URL-PATH", default="/",
        help="URL path the application is mounted at (default: /)")
    app.add_argument(
        "--application-group", metavar="NAME", default="%{GLOBAL}",
        help="WSGIApplicationGroup: the Python (sub-)interpreter the "
             "application runs in (default: %%{GLOBAL}, the main one)")
    app.add_argument(
        "--working-directory", metavar="DIRECTORY-PATH",
        help="current directory of the application, first on its module "
             "search path (default: the directory tether-express runs in)")
    app.add_argument(
        "--python-path", metavar="DIRECTORY-PATH", action="append",
        help="a directory to add to the module search path; repeatable "
             "(default: none besides the working directory)")
    app.add_argument(
        "--setenv", nargs=2, metavar=("NAME", "VALUE"), action="append",
        help="put NAME=VALUE into every request's WSGI environ; repeatable "
             "(default: none)")
    app.add_argument(
        "--passenv", metavar="NAME", action="append",
        help="copy the process environment variable NAME into every "
             "request's WSGI environ; repeatable (default: none)")
    app.add_argument(
        "--reload-on-changes", action="store_true",
        help="for development: reload the WSGI script when it changes "
             "(WSGIScriptReloading On), and in daemon mode also restart the "
             "daemon processes when any Python source file the application "
             "imported from outside the standard library and site-packages "
             "changes (checked every second); daemon mode reloads the "
             "script even without this option, unless --disable-reloading "
             "(default: off)")
    app.add_argument(
        "--disable-reloading", action="store_true",
        help="never reload the WSGI script, even with --reload-on-changes "
             "(default: off)")
    app.add_argument(
        "--map-head-to-get", type=str.lower, choices=("off", "on", "auto"),
        default="auto",
        help="WSGIMapHEADToGET: whether HEAD requests reach the application "
             "as GET (default: auto)")
    app.add_argument(
        "--chunked-request", action="store_true",
        help="accept request bodies sent with chunked transfer encoding "
             "(default: off)")
    app.add_argument(
        "--embedded-mode", action="store_true",
        help="run the application inside Apache's own child processes "
             "instead of in daemon processes; the daemon process options "
             "below then have no effect (default: off, daemon mode)")

    http = parser.add_argument_group("HTTP")
    http.add_argument(
        "--host", metavar="IP-ADDRESS",
        help="address to listen on (default: all interfaces)")
    http.add_argument(
        "--port", type=_count, metavar="NUMBER", default=8000,
        help="port to listen on (default: 8000)")
    http.add_argument(
        "--document-root", metavar="DIRECTORY-PATH",
        help="directory of static files: a URL naming a file in it is "
             "served by Apache, every other URL by the application "
             "(default: none)")
    http.add_argument(
        "--url-alias", nargs=2, metavar=("URL-PATH", "FILE-PATH"),
        action="append",
        help="serve a static file or directory at a URL path; repeatable "
             "(default: none)")
    http.add_argument(
        "--limit-request-body", type=_count, metavar="NUMBER",
        default=10485760,
        help="largest request body in bytes, 0 for no limit "
             "(default: 10485760)")
    http.add_argument(
        "--keep-alive-timeout", type=_count, metavar="SECONDS", default=2,
        help="seconds an idle connection is kept open for another request, "
             "0 to close after each (default: 2)")
    http.add_argument(
        "--server-backlog", type=_count, metavar="NUMBER", default=500,
        help="connections the kernel queues for Apache before it accepts "
             "them (ListenBacklog) (default: 500)")

    tls = parser.add_argument_group(
        "HTTPS and HTTP/2",
        "With --https-port, Apache (mod_ssl) also listens for HTTPS there; "
        "the application is served on both ports.")
    tls.add_argument(
        "--https-port", type=_count, metavar="NUMBER",
        help="port to listen on for HTTPS, on --host's address; needs a "
             "certificate and key (default: none, no HTTPS)")
    tls.add_argument(
        "--ssl-certificate-file", metavar="FILE-PATH",
        help="the server's certificate, PEM (SSLCertificateFile) "
             "(default: none)")
    tls.add_argument(
        "--ssl-certificate-key-file", metavar="FILE-PATH",
        help="the private key of that certificate, PEM, unencrypted "
             "(SSLCertificateKeyFile) (default: none)")
    tls.add_argument(
        "--ssl-certificate", metavar="FILE-PATH",
        help="the common part of the certificate's and key's names: "
             "FILE-PATH.crt and FILE-PATH.key, when the two options above "
             "are not given (default: none)")
    tls.add_argument(
        "--ssl-certificate-chain-file", metavar="FILE-PATH",
        help="the certificates of the authorities between the server's "
             "certificate and a root, PEM (SSLCertificateChainFile) "
             "(default: none)")
    tls.add_argument(
        "--ssl-ca-certificate-file", metavar="FILE-PATH",
        help="the authorities whose client certificates are accepted, PEM "
             "(SSLCACertificateFile); every HTTPS request must then present "
             "one, unless --ssl-verify-client narrows that to sub-URLs "
             "(default: none, no client certificates)")
    tls.add_argument(
        "--ssl-verify-client", metavar="URL-PATH", action="append",
        help="ask for a client certificate only under this URL path; "
             "repeatable; needs --ssl-ca-certificate-file (default: the "
             "whole site, when a CA file is given)")
    tls.add_argument(
        "--ssl-environment", action="store_true",
        help="pass mod_ssl's SSL_* variables into each HTTPS request's "
             "WSGI environ (SSLOptions +StdEnvVars) (default: off)")
    tls.add_argument(
        "--https-only", action="store_true",
        help="redirect every plain HTTP request to the same URL on "
             "--https-port (301) (default: off)")
    tls.add_argument(
        "--hsts-policy", metavar="PARAMS",
        help="with --https-only, the Strict-Transport-Security header sent "
             "on HTTPS responses, e.g. 'max-age=31536000' (default: none)")
    tls.add_argument(
        "--http2", action="store_true",
        help="offer HTTP/2 (mod_http2, Protocols h2 h2c http/1.1): h2 over "
             "HTTPS, h2c over plain HTTP; a warning and HTTP/1.1 only when "
             "this Apache has no mod_http2 (default: off)")

    front = parser.add_argument_group(
        "Front-end proxies and load balancers")
    front.add_argument(
        "--trust-proxy-header", metavar="HEADER-NAME", action="append",
        help="a header set by a front-end proxy that the application may "
             "believe (WSGITrustedProxyHeaders), e.g. X-Forwarded-For, "
             "X-Forwarded-Proto; repeatable (default: none)")
    front.add_argument(
        "--trust-proxy", metavar="IP-ADDRESS/SUBNET", action="append",
        help="a proxy those headers are believed from (WSGITrustedProxies); "
             "repeatable (default: any peer, when --trust-proxy-header is "
             "given)")
    front.add_argument(
        "--health-url", metavar="URL-PATH",
        help="a URL path answering 200 'OK' from the application's own "
             "process group (daemon processes, or Apache's children in "
             "embedded mode) without calling the application, for load "
             "balancers' health checks, e.g. /-/health (default: none)")

    proc = parser.add_argument_group("Processes")
    proc.add_argument(
        "--processes", type=_count, metavar="NUMBER", default=1,
        help="daemon processes running the application (embedded mode: "
             "Apache child processes) (default: 1)")
    proc.add_argument(
        "--threads", type=_count, metavar="NUMBER", default=5,
        help="request threads in each of those processes; in embedded mode "
             "with the prefork MPM, processes x threads single-threaded "
             "processes (default: 5)")
    proc.add_argument(
        "--max-clients", type=_count, metavar="NUMBER",
        help="most requests Apache serves at once (MaxRequestWorkers), "
             "rounded up to whole Apache processes (default: daemon mode 1.5 "
             "x processes x threads + 10, at least 20; embedded mode "
             "processes x threads)")
    for name, what in (
            ("--initial-workers", "Apache's processes started at first "
             "(StartServers)"),
            ("--minimum-spare-workers", "idle workers Apache keeps at least "
             "(MinSpareThreads, MinSpareServers)"),
            ("--maximum-spare-workers", "idle workers Apache keeps at most "
             "(MaxSpareThreads, MaxSpareServers)")):
        proc.add_argument(
            name, type=_fraction, metavar="NUMBER",
            help="daemon mode: %s, as a fraction (0 to 1) of --max-clients "
                 "(default: tether-express's sizing for the MPM)" % what)
    proc.add_argument(
        "--server-mpm", choices=("event", "worker", "prefork"),
        help="Apache MPM to use (default: the first of event, worker, "
             "prefork that this Apache has)")
    proc.add_argument(
        "--process-name", metavar="NAME",
        help="the name start-server gives Apache's parent process (its "
             "argv[0]), for process managers that look for it; the "
             "apachectl script does not (default: the httpd executable's "
             "path)")
    proc.add_argument(
        "--user", metavar="USERNAME",
        help="when started as root, the user Apache's children and the "
             "daemon processes run as (default: the first of www-data, "
             "apache, nobody that exists)")
    proc.add_argument(
        "--group", metavar="GROUP",
        help="when started as root, the group Apache's children and the "
             "daemon processes run as (default: the user's primary group)")

    daemon = parser.add_argument_group(
        "Daemon processes",
        "How the daemon processes (WSGIDaemonProcess) run; none of these "
        "applies with --embedded-mode.  A timeout or limit of 0 turns it "
        "off unless said otherwise.")
    daemon.add_argument(
        "--process-group", metavar="NAME",
        help="name of the daemon process group; the processes show as "
             "(wsgi:NAME) (default: HOST:PORT, e.g. localhost:8000, shown "
             "as (wsgi:HOST:PORT:UID))")
    daemon.add_argument(
        "--socket-prefix", metavar="DIRECTORY-PATH",
        help="directory of the Unix sockets between Apache's children and "
             "the daemon processes (WSGISocketPrefix DIRECTORY/wsgi); "
             "created if missing (default: the server root)")
    for name, metavar, text in _DAEMON_NUMBERS:
        default = DAEMON_DEFAULTS[name[2:].replace("-", "_")]
        daemon.add_argument(name, type=_count, metavar=metavar,
                            default=default,
                            help="%s (default: %d)" % (text, default))

    server = parser.add_argument_group("Server root and logs")
    server.add_argument(
        "--server-root", metavar="DIRECTORY-PATH",
        help="directory for the generated httpd.conf, apachectl and logs "
             "(default: $TMPDIR or /tmp, then tether-HOST:PORT:UID)")
    server.add_argument(
        "--pid-file", metavar="FILE-PATH",
        help="Apache's PidFile (default: SERVER-ROOT/httpd.pid)")
    server.add_argument(
        "--log-directory", metavar="DIRECTORY-PATH",
        help="directory for error_log and access_log; overrides "
             "--log-to-terminal (default: SERVER-ROOT/logs)")
    server.add_argument(
        "--log-to-terminal", action="store_true",
        help="send the error log to stderr and the access log to stdout "
             "(default: off)")
    server.add_argument(
        "--log-level", choices=LOG_LEVELS, default="warn", metavar="NAME",
        help="Apache LogLevel: one of %s (default: warn)"
             % ", ".join(LOG_LEVELS[:8] + ("trace1..trace8",)))
    server.add_argument(
        "--access-log", action="store_true",
        help="log each request in common log format (default: off)")
    server.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="text: Apache's usual error and access log lines; json: one "
             "JSON object a line in both (ErrorLogFormat, LogFormat) "
             "(default: text)")
    server.add_argument(
        "--metrics-url", metavar="URL-PATH",
        help="a URL path serving Tether's metrics of every daemon process "
             "and Apache child in Prometheus's text format "
             "(TetherMetricsURL), e.g. /metrics (default: none)")
    server.add_argument(
        "--server-status", action="store_true",
        help="serve mod_status's page at /server-status, with Tether's "
             "daemon process groups (threads busy and idle, requests "
             "served) (default: off)")
    server.add_argument(
        "--include-file", metavar="FILE-PATH", action="append",
        help="an Apache configuration file to include at the end of "
             "httpd.conf (IncludeOptional); repeatable (default: none)")
    server.add_argument(
        "--setup-only", action="store_true",
        help="write the server root and stop; start Apache later with "
             "SERVER-ROOT/apachectl (default: off)")
    _add_apache_options(parser)

    _add_site_options(parser)
    for name, (nargs, _) in UNSUPPORTED.items():
        parser.add_argument(name, nargs=nargs, action=_Unsupported,
                            help=argparse.SUPPRESS)


_SERVER_EPILOG = (
    "Options of mod_wsgi-express that tether-express cannot implement "
    "(debug mode, telemetry, managed services...) are refused with an error "
    "naming them and saying why.")


def make_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Run WSGI applications in Apache httpd with mod_tether, "
                    "or wire mod_tether into a system Apache.")
    parser.add_argument("--version", action="version",
                        version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name, help_text, **kwargs):
        return commands.add_parser(
            name, help=help_text, description=help_text, allow_abbrev=False,
            **kwargs)

    command("module-location", "Print the path of mod_tether.so.")
    command("module-config",
            "Print the configuration lines that load mod_tether into a "
            "system Apache: LoadModule, and WSGIPythonHome when this Python "
            "is a virtual environment or otherwise not at its built prefix.")
    install = command(
        "install-module",
        "Copy mod_tether.so into Apache's modules directory and print the "
        "configuration lines that load it from there.")
    install.add_argument(
        "--modules-directory", metavar="DIRECTORY-PATH",
        help="where to copy it (default: the first of "
             "/usr/lib/apache2/modules, /usr/lib64/httpd/modules, "
             "/usr/lib/httpd/modules, /usr/local/apache2/modules... "
             "that exists)")
    setup = command(
        "setup-server",
        "Write a server root (httpd.conf, apachectl, logs/) that runs the "
        "application, without starting Apache.", epilog=_SERVER_EPILOG)
    _add_server_options(setup)
    start = command(
        "start-server",
        "Set up a server root and run Apache in the foreground.  Ctrl-C or "
        "SIGTERM stops it; SIGHUP or SIGUSR1 restarts it gracefully.",
        epilog=_SERVER_EPILOG)
    _add_server_options(start)
    return parser


# --- commands ----------------------------------------------------------------

def _module_path():
    path = tether.module_location()
    if not os.path.isfile(path):
        raise SetupError(
            "mod_tether.so is not at %s: run the tether-express of an "
            "installed tether-wsgi package (pip install builds the module)"
            % path)
    return path


def cmd_module_location(args):
    print(_module_path())
    return 0


def cmd_module_config(args):
    sys.stdout.write(module_config_lines(_module_path()))
    return 0


def installed_module_name():
    """mod_tether-pyXY.so: one per Python version can sit side by side."""
    return "mod_tether-py%d%d.so" % sys.version_info[:2]


def cmd_install_module(args):
    source = _module_path()
    target_dir = find_modules_dir(args.modules_directory)
    if target_dir is None:
        raise ApacheError("no Apache modules directory was found: pass "
                          "--modules-directory")
    target = os.path.join(target_dir, installed_module_name())
    tmp = target + ".tmp"
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        # Replace, not overwrite: a running Apache keeps its mapped copy.
        os.replace(tmp, target)
    except OSError as e:
        raise SetupError("cannot install %s into %s: %s"
                         % (os.path.basename(target), target_dir,
                            e.strerror or e))
    sys.stdout.write(module_config_lines(target))
    return 0


def _prepare(args):
    """Build and write the server root; check what Apache will read."""
    module_path = _module_path()
    apache = Apache.discover(args.httpd_executable, args.modules_directory,
                             args.mime_types)
    account, note = resolve_account(args.user, args.group)
    setup = build(args, apache, account, module_path, account_note=note)
    soft = find_unreadable(account, setup.soft_needs)
    if soft is not None and setup.mode == "daemon":
        # The daemons would fail to enter it: start them in the server root.
        setup = build(args, apache, account, module_path, account_note=note,
                      working_directory_unreadable=True)
        setup.warnings.append(
            "%s; the daemon processes start in %s instead: pass "
            "--working-directory to choose another" % (soft,
                                                       setup.server_root))
    elif soft is not None:
        setup.warnings.append(
            "%s; pass --working-directory to choose another" % soft)
    write(setup)
    problem = find_unreadable(account, setup.needs)
    if problem is None and setup.socket_dir is not None \
            and not os.access(setup.socket_dir, os.W_OK | os.X_OK):
        # Apache's parent, running as this user, makes the sockets there.
        problem = ("the daemon socket directory %s is not writable by %s, "
                   "which Apache's parent runs as: pass --socket-prefix "
                   "naming a directory it can write"
                   % (setup.socket_dir, _whoami()))
    return setup, problem


def _whoami():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


def _print_summary(setup, out=None):
    out = out or sys.stdout
    out.write(summary_text(setup))
    out.flush()
    for warning in setup.warnings:
        print("%s: warning: %s" % (PROG, warning), file=sys.stderr)


def cmd_setup_server(args):
    setup, problem = _prepare(args)
    _print_summary(setup)
    if problem is not None:
        print("%s: warning: %s" % (PROG, problem), file=sys.stderr)
    print("\nStart it with: %s start"
          % os.path.join(setup.server_root, "apachectl"))
    return 0


def cmd_start_server(args):
    if args.setup_only:
        return cmd_setup_server(args)
    setup, problem = _prepare(args)
    if problem is not None:
        raise SetupError(str(problem))
    _print_summary(setup)
    command = supervise.foreground_command(setup.httpd, setup.conf)
    command += setup.httpd_args
    os.environ.update(setup.environment)
    if setup.process_name:
        command = named_command(command, setup.process_name)
    if setup.envvars_script:
        command = sourcing_command(command, setup.envvars_script)
    status = supervise.run(command, cwd=setup.working_directory)
    if status != 0:
        print("%s: Apache exited with status %d" % (PROG, status),
              file=sys.stderr)
        _show_log_tail(setup.error_log)
    return status


def sourcing_command(command, script):
    """`command` run after a shell sources `script` (--envvars-script):
    the shell then execs it, so the signals start-server forwards reach
    Apache."""
    return ["/bin/sh", "-c", '. "$0" && exec "$@"', script] + list(command)


def named_command(command, name):
    """`command` run under another argv[0] (--process-name): a small Python
    execs it, as the shell's `exec -a` would (same process, so the signals
    start-server forwards reach it)."""
    return [sys.executable, "-I", "-S", "-c",
            "import os, sys; os.execv(sys.argv[1], sys.argv[2:])",
            command[0], name] + list(command[1:])


def _show_log_tail(path, lines=20):
    if not path:
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = list(collections.deque(f, maxlen=lines))
    except OSError:
        return
    if tail:
        print("Last lines of %s:" % path, file=sys.stderr)
        sys.stderr.writelines(tail)


COMMANDS = {
    "module-location": cmd_module_location,
    "module-config": cmd_module_config,
    "install-module": cmd_install_module,
    "setup-server": cmd_setup_server,
    "start-server": cmd_start_server,
}


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (SetupError, ApacheError, TemplateError, ValueError) as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
