"""Find the system's Apache httpd: its binary, modules directory, built-in
modules and MIME types file, without apxs.

Every function takes the places it searches as arguments (with the usual
Linux layouts as defaults) so tests can point it at a fake layout.
"""

import os
import shutil
import subprocess

HTTPD_NAMES = ("apache2", "httpd")
HTTPD_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/apache2/bin",
              "/opt/homebrew/bin")
MODULES_DIRS = (
    "/usr/lib/apache2/modules",         # Debian, Ubuntu
    "/usr/lib64/httpd/modules",         # RHEL, Fedora (64-bit)
    "/usr/lib/httpd/modules",           # RHEL, Fedora, Arch, Alpine
    "/usr/libexec/apache2",             # SUSE, macOS
    "/usr/local/apache2/modules",       # built from source, httpd image
    "/opt/homebrew/lib/httpd/modules",  # Homebrew
)
MIME_TYPES_FILES = (
    "/etc/mime.types",
    "/etc/apache2/mime.types",
    "/etc/httpd/conf/mime.types",
    "/usr/local/apache2/conf/mime.types",
    "/opt/homebrew/etc/httpd/mime.types",
)

OS_RELEASE = "/etc/os-release"

# MPMs in the order tether-express prefers them when none is asked for.
MPMS = ("event", "worker", "prefork")


class ApacheError(Exception):
    """Apache, or a part of it that the configuration needs, is missing."""


class Module:
    """An Apache module the generated configuration may need."""

    def __init__(self, name, filename, source):
        self.name = name            # as in LoadModule, e.g. rewrite_module
        self.filename = filename    # shared object, e.g. mod_rewrite.so
        self.source = source        # as `httpd -l` lists it when built in

    def __repr__(self):
        return "Module(%r)" % self.name


MODULES = {m.name: m for m in (
    Module("mpm_event_module", "mod_mpm_event.so", "event.c"),
    Module("mpm_worker_module", "mod_mpm_worker.so", "worker.c"),
    Module("mpm_prefork_module", "mod_mpm_prefork.so", "prefork.c"),
    Module("unixd_module", "mod_unixd.so", "mod_unixd.c"),
    Module("authz_core_module", "mod_authz_core.so", "mod_authz_core.c"),
    Module("mime_module", "mod_mime.so", "mod_mime.c"),
    Module("alias_module", "mod_alias.so", "mod_alias.c"),
    Module("env_module", "mod_env.so", "mod_env.c"),
    Module("log_config_module", "mod_log_config.so", "mod_log_config.c"),
    Module("rewrite_module", "mod_rewrite.so", "mod_rewrite.c"),
    Module("ssl_module", "mod_ssl.so", "mod_ssl.c"),
    Module("socache_shmcb_module", "mod_socache_shmcb.so",
           "mod_socache_shmcb.c"),
    Module("headers_module", "mod_headers.so", "mod_headers.c"),
    Module("http2_module", "mod_http2.so", "mod_http2.c"),
    Module("status_module", "mod_status.so", "mod_status.c"),
    Module("filter_module", "mod_filter.so", "mod_filter.c"),
    Module("deflate_module", "mod_deflate.so", "mod_deflate.c"),
    Module("reqtimeout_module", "mod_reqtimeout.so", "mod_reqtimeout.c"),
    Module("authn_core_module", "mod_authn_core.so", "mod_authn_core.c"),
    Module("auth_basic_module", "mod_auth_basic.so", "mod_auth_basic.c"),
    Module("auth_digest_module", "mod_auth_digest.so", "mod_auth_digest.c"),
    Module("authz_user_module", "mod_authz_user.so", "mod_authz_user.c"),
    Module("authz_host_module", "mod_authz_host.so", "mod_authz_host.c"),
    Module("dir_module", "mod_dir.so", "mod_dir.c"),
    Module("autoindex_module", "mod_autoindex.so", "mod_autoindex.c"),
    Module("cgi_module", "mod_cgi.so", "mod_cgi.c"),
    Module("cgid_module", "mod_cgid.so", "mod_cgid.c"),
    Module("proxy_module", "mod_proxy.so", "mod_proxy.c"),
    Module("proxy_http_module", "mod_proxy_http.so", "mod_proxy_http.c"),
)}


def mpm_module(mpm):
    """The Module record of an MPM name (event, worker, prefork)."""
    return MODULES["mpm_%s_module" % mpm]


def find_httpd(explicit=None, search_path=None, extra_dirs=None,
               os_release=None):
    """Return the path of the Apache httpd binary.

    `explicit` (--httpd-executable) wins; else apache2 or httpd on
    `search_path` (default $PATH) and then in `extra_dirs` (default
    HTTPD_DIRS).  Raises ApacheError with install advice (for the
    distribution `os_release` names) when there is none.
    """
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise ApacheError("the Apache executable %s given with "
                              "--httpd-executable does not exist or is not "
                              "executable: pass the path of an installed "
                              "Apache httpd, or %s."
                              % (explicit, install_advice(os_release)))
        return os.path.abspath(path)
    if search_path is None:
        search_path = os.environ.get("PATH", os.defpath)
    if extra_dirs is None:
        extra_dirs = HTTPD_DIRS
    dirs = [d for d in search_path.split(os.pathsep) if d]
    dirs += [d for d in extra_dirs if d not in dirs]
    for name in HTTPD_NAMES:
        path = shutil.which(name, path=os.pathsep.join(dirs))
        if path:
            return os.path.abspath(path)
    raise ApacheError(missing_apache_message(os_release))


def _distribution_family(os_release):
    if os_release is None:
        os_release = OS_RELEASE
    try:
        with open(os_release, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    ids = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip("\"'").lower().split()
    for family, members in (
            ("debian", ("debian", "ubuntu")),
            ("rhel", ("rhel", "fedora", "centos", "rocky", "almalinux")),
            ("suse", ("suse", "opensuse", "sles")),
            ("alpine", ("alpine",)),
            ("arch", ("arch",))):
        if any(i in members for i in ids):
            return family
    return None


def install_advice(os_release=None):
    """How to install Apache httpd on this distribution, e.g. "install the
    apache2 package (apt-get install apache2)"."""
    return {
        "debian": "install the apache2 package (apt-get install apache2)",
        "rhel": "install the httpd package (dnf install httpd)",
        "suse": "install the apache2 package (zypper install apache2)",
        "alpine": "install the apache2 package (apk add apache2)",
        "arch": "install the apache package (pacman -S apache)",
    }.get(_distribution_family(os_release),
          "install it (the apache2 package on Debian/Ubuntu, httpd on "
          "RHEL/Fedora)")


def missing_apache_message(os_release=None):
    """One sentence saying which package provides Apache httpd here."""
    return ("Apache httpd (apache2 or httpd) was not found on PATH or in "
            "/usr/sbin: %s, or pass --httpd-executable."
            % install_advice(os_release))


def find_modules_dir(explicit=None, candidates=MODULES_DIRS):
    """Return Apache's modules directory: `explicit` (--modules-directory)
    or the first of `candidates` that holds shared modules, else None
    (Apache built with everything compiled in)."""
    if explicit:
        if not os.path.isdir(explicit):
            raise ApacheError("the modules directory %s given with "
                              "--modules-directory does not exist" % explicit)
        return os.path.abspath(explicit)
    for path in candidates:
        if os.path.isdir(path) and any(
                n.endswith(".so") for n in os.listdir(path)):
            return path
    return None


def find_mime_types(explicit=None, candidates=MIME_TYPES_FILES):
    """Return the MIME types file for TypesConfig; /dev/null when the
    system has none, so Apache still starts (it then serves static files
    without a content type)."""
    if explicit:
        if not os.path.isfile(explicit):
            raise ApacheError("the MIME types file %s given with "
                              "--mime-types does not exist" % explicit)
        return os.path.abspath(explicit)
    for path in candidates:
        if os.path.isfile(path):
            return path
    return os.devnull


def builtin_modules(httpd):
    """The source names `httpd -l` lists (core.c, mod_so.c, event.c...).

    Returns an empty set when httpd cannot say; then every needed module is
    loaded from the modules directory."""
    try:
        out = subprocess.run([httpd, "-l"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in out.splitlines()
                     if line.strip().endswith(".c"))


class Apache:
    """What tether-express knows about one Apache installation."""

    def __init__(self, httpd, modules_dir, builtins, mime_types):
        self.httpd = httpd
        self.modules_dir = modules_dir
        self.builtins = frozenset(builtins)
        self.mime_types = mime_types

    @classmethod
    def discover(cls, httpd_executable=None, modules_directory=None,
                 mime_types=None):
        """Find everything from the system, honouring the CLI overrides."""
        httpd = find_httpd(httpd_executable)
        return cls(httpd, find_modules_dir(modules_directory),
                   builtin_modules(httpd), find_mime_types(mime_types))

    def is_builtin(self, module):
        return module.source in self.builtins

    def shared_path(self, module):
        """Path of the module's shared object, or None when absent."""
        if self.modules_dir is None:
            return None
        path = os.path.join(self.modules_dir, module.filename)
        return path if os.path.isfile(path) else None

    def has_module(self, module):
        return self.is_builtin(module) or self.shared_path(module) is not None

    def builtin_mpm(self):
        for mpm in MPMS:
            if self.is_builtin(mpm_module(mpm)):
                return mpm
        return None

    def choose_mpm(self, requested=None):
        """The MPM to run: `requested` (--server-mpm) if available, else the
        first of event, worker, prefork that this Apache has."""
        builtin = self.builtin_mpm()
        if builtin:
            if requested and requested != builtin:
                raise ApacheError(
                    "%s has the %s MPM compiled in, so --server-mpm %s is "
                    "not available" % (self.httpd, builtin, requested))
            return builtin
        available = [m for m in MPMS if self.shared_path(mpm_module(m))]
        if requested:
            if requested not in available:
                raise ApacheError(
                    "the %s MPM (%s) is not in %s; available: %s"
                    % (requested, mpm_module(requested).filename,
                       self.modules_dir, ", ".join(available) or "none"))
            return requested
        if not available:
            raise ApacheError(
                "no Apache MPM was found: %s has none compiled in and "
                "no mod_mpm_*.so is in %s; pass --modules-directory"
                % (self.httpd, self.modules_dir or "any modules directory"))
        return available[0]

    def load_lines(self, names, why=None):
        """(module name, path) for each module in `names` that must be
        loaded with LoadModule: built-in modules are skipped.  Raises
        ApacheError naming the first module this Apache lacks; `why`
        maps a module name to the option that needs it."""
        result = []
        for name in names:
            module = MODULES[name]
            if self.is_builtin(module):
                continue
            path = self.shared_path(module)
            if path is None:
                reason = (why or {}).get(name)
                raise ApacheError(
                    "%s is neither compiled into %s nor in %s%s"
                    % (module.filename, self.httpd,
                       self.modules_dir or "a modules directory",
                       " (needed for %s)" % reason if reason else ""))
            result.append((name, path))
        return result
