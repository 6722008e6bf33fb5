"""The mod_wsgi-express start-server options about the site around the
application: host names, access and authentication scripts, error
documents, handlers, static directories, compression, request read
timeouts, log names, formats and rotation, locale.

express.build() calls these; each fills placeholders of httpd.conf.in
(through express._Extras) and records modules, summary lines and the files
Apache must read.  Nothing here writes a file or runs Apache.
"""

import math
import os
import re
import shlex
import shutil

from .access import Need
from .express import SetupError, _option, _rewrite_escape
from .render import apache_escape, option_escape

# What --compress-responses compresses (AddOutputFilterByType DEFLATE).
COMPRESSED_TYPES = ("text/plain", "text/html", "text/xml", "text/css",
                    "text/javascript", "application/javascript",
                    "application/json", "application/xml",
                    "application/xhtml+xml", "image/svg+xml")

# mod_wsgi-express's defaults for the mod_reqtimeout options; used when any
# of them is given (otherwise mod_reqtimeout is not loaded at all).
READ_TIMEOUT_DEFAULTS = {
    "header_timeout": 15,
    "header_max_timeout": 30,
    "header_min_rate": 500,
    "body_timeout": 15,
    "body_max_timeout": 0,
    "body_min_rate": 500,
}

AUTH_TYPES = ("Basic", "Digest")
DEFAULT_AUTH_GROUP = "wsgi"
DEFAULT_MAX_LOG_SIZE = 5            # MB, as mod_wsgi-express
ROTATELOGS_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/apache2/bin")
OVERRIDES = ("All", "None", "AuthConfig", "FileInfo", "Indexes", "Limit",
             "Options", "Nonfatal=Override", "Nonfatal=Unknown",
             "Nonfatal=All")

_HOST_NAME = re.compile(
    r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_*.-]*[A-Za-z0-9_])?$")
_EXTENSION = re.compile(r"^\.?[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_WORD = re.compile(r"^[^\s\"'\\]+$")


def _script(option, path):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise SetupError("%s %s does not exist" % (option, path))
    return path


def _file_name(option, name, default):
    if name is None:
        return default
    if not name or "/" in name or name in (".", ".."):
        raise SetupError("%s %r must be a file name, without a directory"
                         % (option, name))
    return name


def log_names(args):
    """(error log name, access log name) in the log directory."""
    return (_file_name("--error-log-name", args.error_log_name, "error_log"),
            _file_name("--access-log-name", args.access_log_name,
                       "access_log"))


def find_rotatelogs(explicit=None, search_path=None,
                    extra_dirs=ROTATELOGS_DIRS):
    """The rotatelogs program: --rotatelogs-executable, else rotatelogs on
    PATH or in the usual directories (apache2-utils on Debian)."""
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise SetupError("--rotatelogs-executable %s does not exist or "
                             "is not executable" % explicit)
        return os.path.abspath(path)
    if search_path is None:
        search_path = os.environ.get("PATH", os.defpath)
    dirs = [d for d in search_path.split(os.pathsep) if d]
    dirs += [d for d in extra_dirs if d not in dirs]
    path = shutil.which("rotatelogs", path=os.pathsep.join(dirs))
    if path is None:
        raise SetupError("--rotate-logs needs Apache's rotatelogs program, "
                         "which was not found: install it (apache2-utils on "
                         "Debian/Ubuntu, httpd-tools on RHEL/Fedora) or pass "
                         "--rotatelogs-executable")
    return path


def rotating(args, setup, to_terminal, json_logs):
    """The rotatelogs command turning a log path into a piped log, or None
    without --rotate-logs (or with --log-to-terminal)."""
    size = args.max_log_size
    if size is not None and size < 1:
        raise SetupError("--max-log-size must be at least 1 (MB), not %d"
                         % size)
    if not args.rotate_logs:
        for option, value in (("--max-log-size", size),
                              ("--rotatelogs-executable",
                               args.rotatelogs_executable)):
            if value is not None:
                setup.warnings.append("%s only applies with --rotate-logs"
                                      % option)
        return None
    if to_terminal:
        setup.warnings.append("--rotate-logs has no effect with "
                              "--log-to-terminal")
        return None
    if json_logs:
        raise SetupError("--rotate-logs cannot be combined with --log-format "
                         "json: both pipe the logs through a program")
    program = find_rotatelogs(args.rotatelogs_executable)
    size = size or DEFAULT_MAX_LOG_SIZE

    def pipe(path):
        return "|%s %s %dM" % (shlex.quote(program),
                               shlex.quote(path + ".%Y-%m-%d-%H_%M_%S"),
                               size)
    return pipe


WORKER_FRACTIONS = ("initial_workers", "minimum_spare_workers",
                    "maximum_spare_workers")


def given_worker_fractions(args):
    return [_option(dest) for dest in WORKER_FRACTIONS
            if getattr(args, dest) is not None]


def spare_workers(args, sizing):
    """--initial-workers, --minimum-spare-workers, --maximum-spare-workers
    (fractions of MaxRequestWorkers) applied to daemon mode's MPM sizing
    (express.daemon_mpm_sizing()'s dict, changed in place)."""
    most = sizing["MAX_CLIENTS"]
    threads = sizing["THREADS"]
    for dest in WORKER_FRACTIONS:
        value = getattr(args, dest)
        if value is not None and not 0 <= value <= 1:
            raise SetupError("%s must be from 0 to 1 (a fraction of "
                             "--max-clients), not %s" % (_option(dest), value))
    initial = args.initial_workers
    if initial is not None:
        # Whole processes; at least one, at most ServerLimit.
        sizing["START"] = min(sizing["SERVER_LIMIT"], max(
            1, math.ceil(initial * most / threads)))
    unit = threads if sizing["MPM"] != "prefork" else 1
    if args.minimum_spare_workers is not None:
        sizing["MIN_SPARE"] = max(unit, math.ceil(
            args.minimum_spare_workers * most))
    if args.maximum_spare_workers is not None:
        sizing["MAX_SPARE"] = math.ceil(args.maximum_spare_workers * most)
    # Apache's own rule: room for a whole process between the two.
    sizing["MAX_SPARE"] = max(sizing["MAX_SPARE"],
                              sizing["MIN_SPARE"] + unit)


def shell(args):
    """The apachectl script's shell: --shell-executable or /bin/sh."""
    if not args.shell_executable:
        return "/bin/sh"
    path = shutil.which(args.shell_executable)
    if path is None or any(c.isspace() for c in path):
        raise SetupError("--shell-executable %s does not exist, is not "
                         "executable or holds a space"
                         % args.shell_executable)
    return os.path.abspath(path)


def envvars_script(args):
    """--envvars-script's absolute path, or None."""
    if args.envvars_script is None:
        return None
    path = os.path.abspath(args.envvars_script)
    if not os.path.isfile(path):
        raise SetupError("--envvars-script %s does not exist" % path)
    return path


def startup_log(args, setup, log_dir, to_terminal):
    """httpd's -E FILE for --startup-log, or None."""
    if args.startup_log_name is not None and not args.startup_log:
        setup.warnings.append("--startup-log-name only applies with "
                              "--startup-log")
    if not args.startup_log:
        return None
    name = _file_name("--startup-log-name", args.startup_log_name,
                      "startup_log")
    if to_terminal:
        setup.warnings.append("--startup-log has no effect with "
                              "--log-to-terminal: start-up errors go to the "
                              "terminal")
        return None
    return os.path.join(log_dir, name)


def access_log_format(args, blocks, setup, access_log):
    """(LogFormat line or "", nickname) for the access_log block."""
    fmt = args.access_log_format
    if fmt is None:
        return "", "common"
    if not access_log:
        setup.warnings.append("--access-log-format only applies with "
                              "--access-log")
    if getattr(args, "log_format", "text") == "json":
        raise SetupError("--access-log-format cannot be combined with "
                         "--log-format json")
    if fmt in ("common", "combined"):
        return "", fmt
    return "\n" + blocks.render("access_log_format",
                                 FORMAT=apache_escape(fmt)), "custom"


def _read_timeouts(args, extras, blocks):
    given = {dest: getattr(args, dest) for dest in READ_TIMEOUT_DEFAULTS
             if getattr(args, dest) is not None}
    if not given:
        return ""
    values = dict(READ_TIMEOUT_DEFAULTS, **given)
    for dest, value in given.items():
        if value < 0:
            raise SetupError("%s must be at least 0, not %d"
                             % (_option(dest), value))
    parts = []
    for stage in ("header", "body"):
        timeout = values[stage + "_timeout"]
        most = values[stage + "_max_timeout"]
        rate = values[stage + "_min_rate"]
        if timeout == 0:
            parts.append("0")
            continue
        text = str(timeout)
        if most:
            if most < timeout:
                raise SetupError("--%s-max-timeout (%d) must not be less "
                                 "than --%s-timeout (%d)"
                                 % (stage, most, stage, timeout))
            if not rate:
                raise SetupError("--%s-max-timeout needs a --%s-min-rate "
                                 "above 0" % (stage, stage))
            text += "-%d" % most
        if rate:
            text += ",MinRate=%d" % rate
        parts.append(text)
    extras.modules["reqtimeout_module"] = ", ".join(
        _option(dest) for dest in given)
    extras.summary.append(("Request Read Timeouts", "header=%s body=%s"
                           % tuple(parts)))
    return blocks.render("request_read_timeout", HEADER=parts[0],
                         BODY=parts[1])


def connection_options(args, extras, blocks):
    """--header-timeout..., --enable-sendfile, --compress-responses."""
    text = [_read_timeouts(args, extras, blocks)]
    if args.enable_sendfile:
        text.append(blocks.render("enable_sendfile"))
    if args.compress_responses:
        text.append(blocks.render("compress_responses",
                                  TYPES=" ".join(COMPRESSED_TYPES)))
        extras.modules["filter_module"] = "--compress-responses"
        extras.modules["deflate_module"] = "--compress-responses"
        extras.summary.append(("Compression", "gzip for text responses"))
    extras.text["CONNECTION_OPTIONS"] = "\n\n".join(t for t in text if t)


def _error_log_format(args, extras, blocks):
    fmt = args.error_log_format
    if fmt is None:
        return
    if getattr(args, "log_format", "text") == "json":
        raise SetupError("--error-log-format cannot be combined with "
                         "--log-format json")
    extras.text["ERROR_LOG_FORMAT"] = blocks.render(
        "error_log_format", FORMAT=apache_escape(fmt))


def _document_root_options(args, extras, blocks, setup, document_root,
                           handler_options, mpm):
    """--allow-override, --directory-index, --directory-listing and
    --add-handler, in the document root's <Directory>; returns the
    rewrite rules that send directories to Apache."""
    overrides = []
    for value in args.allow_override or []:
        for word in value.replace(",", " ").split():
            match = next((o for o in OVERRIDES if o.lower() == word.lower()),
                         None)
            if match is None and word.split("=")[0].lower() != "options":
                raise SetupError("--allow-override %s is not one of %s (or "
                                 "Options=...)" % (word, ", ".join(OVERRIDES)))
            if match is None and not _WORD.match(word):
                raise SetupError("--allow-override %r is not a directive "
                                 "type" % word)
            overrides.append(match or word)
    extras.text["ALLOW_OVERRIDE"] = " ".join(overrides) or "None"
    options = []
    rules = []
    escaped_root = apache_escape(_rewrite_escape(document_root))
    if args.directory_index is not None:
        index = args.directory_index
        if not index or "/" in index or not _WORD.match(index):
            raise SetupError("--directory-index %r must be a file name"
                             % index)
        extras.modules["dir_module"] = "--directory-index"
        rules.append(blocks.render(
            "directory_index_rules", DOCUMENT_ROOT=escaped_root,
            INDEX=apache_escape(_rewrite_escape(index))))
    if args.directory_listing:
        if not args.document_root:
            raise SetupError("--directory-listing needs --document-root")
        options.append(blocks.render("directory_listing"))
        extras.modules["dir_module"] = "--directory-listing"
        extras.modules["autoindex_module"] = "--directory-listing"
        rules.append(blocks.render("directory_listing_rules",
                                   DOCUMENT_ROOT=escaped_root))
    if args.with_cgi:
        if not args.document_root:
            raise SetupError("--with-cgi needs --document-root: the CGI "
                             "scripts are its *.cgi files")
        options.append(blocks.render("with_cgi"))
        # mod_cgi forks from a single-threaded process; mod_cgid serves the
        # threaded MPMs.
        extras.modules["cgi_module" if mpm == "prefork"
                       else "cgid_module"] = "--with-cgi"
        extras.summary.append(("CGI Scripts", "*.cgi of the document root"))
    if rules:
        options.insert(0, blocks.render("directory_index"))
        if not args.document_root:
            setup.warnings.append("--directory-index applies to directories "
                                  "of the --document-root, and none is "
                                  "given")
    handlers = []
    for number, (extension, script) in enumerate(args.add_handler or []):
        if not _EXTENSION.match(extension):
            raise SetupError("--add-handler %r is not a file name extension"
                             % extension)
        if not extension.startswith("."):
            extension = "." + extension
        script = _script("--add-handler %s" % extension, script)
        name = "tether-handler-%d" % (number + 1)
        options.append(blocks.render("add_handler", HANDLER=name,
                                     EXTENSION=extension))
        handlers.append(blocks.render(
            "handler_script", HANDLER=name, EXTENSION=extension,
            SCRIPT=apache_escape(script), OPTIONS=handler_options))
        extras.needs.append(Need(script, "the --add-handler %s script"
                                 % extension))
        extras.summary.append(("Handler %s" % extension, script))
    if handlers and not args.document_root:
        setup.warnings.append("--add-handler applies to files of the "
                              "--document-root, and none is given")
    extras.text["DOCUMENT_ROOT_OPTIONS"] = "".join("\n" + o for o in options)
    return "\n".join(rules), handlers


def _access_and_auth(args, extras, blocks, setup, realm):
    """--host-access-script, --auth-user-script, --auth-type,
    --auth-group-script, --auth-group: <Location /> blocks.  Returns
    whether any needs Python in Apache's children."""
    text = []
    if args.host_access_script:
        script = _script("--host-access-script", args.host_access_script)
        text.append(blocks.render("host_access",
                                  SCRIPT=apache_escape(script)))
        extras.needs.append(Need(script, "the --host-access-script"))
        extras.summary.append(("Host Access Script", script))
    auth_type = args.auth_type
    if auth_type is not None:
        auth_type = next((t for t in AUTH_TYPES
                          if t.lower() == auth_type.lower()), None)
        if auth_type is None:
            raise SetupError("--auth-type %s is not one of %s"
                             % (args.auth_type, ", ".join(AUTH_TYPES)))
    if not args.auth_user_script:
        for option, value in (("--auth-type", args.auth_type),
                              ("--auth-group-script", args.auth_group_script),
                              ("--auth-group", args.auth_group)):
            if value is not None:
                raise SetupError("%s needs --auth-user-script" % option)
    else:
        auth_type = auth_type or "Basic"
        script = _script("--auth-user-script", args.auth_user_script)
        extras.needs.append(Need(script, "the --auth-user-script"))
        extras.summary.append(("Authentication", "%s, by %s"
                               % (auth_type, script)))
        if args.auth_group_script:
            group_script = _script("--auth-group-script",
                                   args.auth_group_script)
            extras.needs.append(Need(group_script, "the --auth-group-script"))
            group = args.auth_group or DEFAULT_AUTH_GROUP
            require = blocks.render("auth_group",
                                    SCRIPT=apache_escape(group_script),
                                    GROUP=apache_escape(group))
            extras.summary.append(("Authorization", "group %s, by %s"
                                   % (group, group_script)))
        elif args.auth_group is not None:
            raise SetupError("--auth-group needs --auth-group-script")
        else:
            require = blocks.render("auth_valid_user")
        exempt = ""
        if args.health_url:
            exempt = blocks.render("auth_exempt", URL=apache_escape(
                args.health_url.rstrip("/")))
        text.append(blocks.render(
            "auth_user", AUTH_TYPE=auth_type, REALM=apache_escape(realm),
            FUNCTION="check_password" if auth_type == "Basic"
            else "get_realm_hash",
            SCRIPT=apache_escape(script), REQUIRE=require, EXEMPT=exempt))
        extras.modules["authn_core_module"] = "--auth-user-script"
        extras.modules["auth_%s_module" % auth_type.lower()] = \
            "--auth-type %s" % auth_type
        extras.modules["authz_user_module"] = "--auth-user-script"
    return text


def _proxies(args, extras, blocks, setup):
    """--proxy-mount-point and --proxy-timeout (mod_proxy)."""
    mounts = args.proxy_mount_point or []
    if not mounts:
        if args.proxy_timeout is not None:
            setup.warnings.append("--proxy-timeout only applies with "
                                  "--proxy-mount-point")
        return []
    text = []
    secure = False
    for url, target in mounts:
        if not url.startswith("/"):
            raise SetupError("--proxy-mount-point %s must start with /"
                             % url)
        if not re.match(r"^https?://[^/\s\"]+(/[^\s\"]*)?$", target):
            raise SetupError("--proxy-mount-point %s %s: the target must be "
                             "an http:// or https:// URL" % (url, target))
        secure = secure or target.startswith("https:")
        text.append(blocks.render("proxy_mount_point",
                                  URL=apache_escape(url),
                                  TARGET=apache_escape(target)))
        extras.summary.append(("Proxy %s" % url, target))
    seconds = args.proxy_timeout
    if seconds is None:
        seconds = args.socket_timeout or 60
    if seconds < 1:
        raise SetupError("--proxy-timeout must be at least 1, not %d"
                         % seconds)
    text.append(blocks.render(
        "proxy_options", SECONDS=seconds,
        SSL_PROXY="\n" + blocks.render("ssl_proxy") if secure else ""))
    extras.modules["proxy_module"] = "--proxy-mount-point"
    extras.modules["proxy_http_module"] = "--proxy-mount-point"
    if secure:
        extras.modules["ssl_module"] = "--proxy-mount-point https://"
    return text


def other_names_access(args, extras):
    """With --server-name: the Require line for requests naming another
    host, and what happens to them, in words."""
    if args.allow_localhost:
        extras.modules["authz_host_module"] = "--allow-localhost"
        return ("Require local",
                "served only when they come from this machine")
    return "Require all denied", "refused (403)"


def _virtual_hosts(args, extras, blocks, setup, port, rewrite):
    """--server-name, --server-alias and --allow-localhost."""
    aliases = args.server_alias or []
    if not args.server_name:
        if aliases:
            raise SetupError("--server-alias needs --server-name")
        if args.allow_localhost:
            setup.warnings.append("--allow-localhost only applies with "
                                  "--server-name")
        extras.text["VIRTUAL_HOSTS"] = ""
        return
    for option, name in [("--server-name", args.server_name)] + [
            ("--server-alias", a) for a in aliases]:
        if not _HOST_NAME.match(name) or "*" in name.lstrip("*."):
            raise SetupError("%s %r is not a host name" % (option, name))
    name = args.server_name
    inherit = blocks.render("rewrite_inherit") if rewrite else ""
    redirect = ""
    if name.lower().startswith("www.") and name.count(".") > 1:
        parent = name[4:]
        redirect = blocks.render(
            "www_redirect", PORT=port, PARENT=parent,
            URL=apache_escape("http://%s%s/" % (
                name, "" if port == 80 else ":%d" % port)))
        extras.modules["alias_module"] = "--server-name www."
    require, access = other_names_access(args, extras)
    extras.text["VIRTUAL_HOSTS"] = blocks.render(
        "virtual_hosts", PORT=port, SERVER_NAME=name,
        ALIASES=blocks.render("server_alias", NAMES=" ".join(aliases))
        if aliases else "",
        INHERIT=inherit, DEFAULT_ACCESS=access, DEFAULT_REQUIRE=require,
        WWW_REDIRECT=redirect)
    extras.summary.append(("Server Name", name + (
        " (also %s)" % ", ".join(aliases) if aliases else "")))


def daemon_options(args):
    """Extra WSGIDaemonProcess options: [(name, value)]."""
    options = []
    if args.locale:
        options += [("lang", args.locale), ("locale", args.locale)]
    if args.python_eggs:
        options.append(("python-eggs", os.path.abspath(args.python_eggs)))
    if args.server_metrics:
        options.append(("server-metrics", "On"))
    if args.switch_interval:
        options.append(("switch-interval", "%g" % args.switch_interval))
    return options


def environment(args):
    """Variables for Apache's own environment: {name: value}."""
    env = {}
    if args.locale:
        env["LANG"] = args.locale
        env["LC_ALL"] = args.locale
    return env


def _python_options(args, blocks, mode):
    """--python-warnings, --orphan-interpreter, --ignore-activity, and in
    embedded mode --switch-interval and --python-eggs (daemon mode has
    switch-interval= and python-eggs= instead)."""
    text = []
    for spec in args.python_warnings or []:
        if not spec or any(c in spec for c in "\n\r\"\\"):
            raise SetupError("--python-warnings %r cannot be used: it is "
                             "empty or holds quotes, backslashes or line "
                             "breaks" % spec)
        text.append(blocks.render("python_warnings", SPEC=spec))
    if args.orphan_interpreter:
        text.append(blocks.render("destroy_interpreter"))
    for url in args.ignore_activity or []:
        if not url.startswith("/") or any(c in url for c in "\n\r\"\\"):
            raise SetupError("--ignore-activity %r must be a URL path "
                             "starting with / (with no quotes, backslashes "
                             "or line breaks)" % url)
        text.append(blocks.render("ignore_activity", URL=url))
    if args.switch_interval and mode == "embedded":
        text.append(blocks.render("switch_interval",
                                  SECONDS="%g" % args.switch_interval))
    if args.python_eggs and mode == "embedded":
        text.append(blocks.render("python_eggs", PATH=os.path.abspath(
            args.python_eggs)))
    return text


class Site:
    """What site_options() adds besides extras.text."""

    def __init__(self):
        self.directory_rules = ""       # static_files block's rules
        self.daemon_options = ""        # appended to WSGIDaemonProcess
        self.python_in_children = False     # a hook script needs it


def site_options(args, extras, blocks, setup, *, mode, mpm, port,
                 host_name, document_root, rewrite, handler_options):
    """Everything of this module for build(): fills extras, returns a
    Site."""
    site = Site()
    for name, value in (("--locale", args.locale),
                        ("--python-eggs", args.python_eggs)):
        if value is not None and (not value or not _WORD.match(value)):
            raise SetupError("%s %r cannot be used: it is empty or holds "
                             "spaces or quotes" % (name, value))
    connection_options(args, extras, blocks)
    _error_log_format(args, extras, blocks)
    site.directory_rules, handlers = _document_root_options(
        args, extras, blocks, setup, document_root, handler_options, mpm)
    text = []
    if args.error_override:
        if mode == "embedded":
            setup.warnings.append("--error-override only applies to daemon "
                                  "mode: it has no effect with "
                                  "--embedded-mode")
        text.append(blocks.render("error_override"))
    for status, url in args.error_document or []:
        if not status.isdigit() or not 400 <= int(status) <= 599:
            raise SetupError("--error-document %s is not an error status "
                             "(400 to 599)" % status)
        if not url.startswith(("/", "http://", "https://")):
            raise SetupError("--error-document %s %s must be a URL path "
                             "(/...) or a URL" % (status, url))
        text.append(blocks.render("error_document", STATUS=int(status),
                                  URL=apache_escape(url)))
    if args.server_metrics:
        text.append(blocks.render("server_metrics"))
    text += _python_options(args, blocks, mode)
    text += handlers
    hooks = _access_and_auth(args, extras, blocks, setup,
                             "%s:%d" % (args.server_name or host_name, port))
    if hooks:
        site.python_in_children = True
        if mode == "daemon":
            setup.warnings.append(
                "the access and authentication scripts run in Apache's "
                "children, so Python starts in them too (not only in the "
                "daemon processes)")
    text += hooks
    text += _proxies(args, extras, blocks, setup)
    extras.text["SITE_OPTIONS"] = "\n\n".join(text)
    _virtual_hosts(args, extras, blocks, setup, port, rewrite)
    site.daemon_options = "".join(
        blocks.render("daemon_option", NAME=name, VALUE=option_escape(value))
        for name, value in daemon_options(args))
    if args.locale:
        extras.summary.append(("Locale", args.locale))
    if args.python_eggs:
        extras.summary.append(("Python Eggs", os.path.abspath(
            args.python_eggs)))
    return site
