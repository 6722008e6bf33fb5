"""Finds and, when allowed, installs what the benchmark needs.

- Apache httpd 2.4 with the event MPM (Debian's apache2),
- wrk (Debian's wrk package),
- a venv holding mod_wsgi MODWSGI_VERSION and gunicorn from PyPI, made from
  the base Python (/usr/bin/python3) and built against the same Apache
  (needs apache2-dev for apxs),
- a venv holding Tether built from this checkout (or one given as is).

As root everything lives under /opt/tether-bench, where Apache's children
(www-data) can read it; otherwise under ~/.local/share/tether-bench.  apt-get
runs only as root; an ordinary user is told which packages to install.
"""

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys

from .util import BenchError, clean_env, run, running_as_root, say

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

MODWSGI_VERSION = "6.1.1"
BASE_PYTHON = "/usr/bin/python3"
APACHE_USERS = ("www-data", "apache", "daemon")

BINARY_CANDIDATES = ("/usr/sbin/apache2", "/usr/sbin/httpd",
                     "/usr/local/apache2/bin/httpd")
MODULES_DIR_CANDIDATES = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
                          "/usr/lib/httpd/modules", "/usr/local/apache2/modules")


def bench_home():
    """Where the harness keeps its venvs and build directory."""
    if running_as_root():
        return "/opt/tether-bench"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser(
        "~/.local/share")
    return os.path.join(data, "tether-bench")


def default_modwsgi_venv():
    return os.path.join(bench_home(), "venv-modwsgi")


def default_tether_venv():
    return os.path.join(bench_home(), "venv-tether")


class Apache:
    """The httpd binary, its modules directory and what is compiled in."""

    def __init__(self, binary, modules_dir, builtins, version):
        self.binary = binary
        self.modules_dir = modules_dir
        self.builtins = builtins
        self.version = version

    def module_line(self, name):
        """LoadModule for mod_<name>, "" if compiled in; BenchError if absent."""
        if name in self.builtins:
            return ""
        path = os.path.join(self.modules_dir, "mod_%s.so" % name)
        if not os.path.exists(path):
            raise BenchError("Apache has no mod_%s (looked for %s)"
                             % (name, path))
        return "LoadModule %s_module %s" % (name, path)


class PythonEnv:
    """A venv the servers run: its prefix, Python version and packages."""

    def __init__(self, prefix, python_version, packages, module_path=None):
        self.prefix = prefix
        self.python = os.path.join(prefix, "bin", "python")
        self.python_version = python_version
        self.packages = packages        # {"mod_wsgi": "6.1.1", ...}
        self.module_path = module_path  # the Apache module it provides


class Toolset:
    """Everything found or installed; None where a server needs none."""

    def __init__(self):
        self.apache = None
        self.wrk = None
        self.wrk_version = None
        self.tether = None
        self.modwsgi = None             # also holds gunicorn
        self.apache_user = None         # (user, group) as root, else None


# --- discovery ---------------------------------------------------------------

def find_apache():
    """An Apache, or None when there is no httpd 2.4 with mpm_event."""
    candidates = list(BINARY_CANDIDATES)
    for name in ("apache2", "httpd"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    binary = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if not binary:
        return None
    try:
        listed = run([binary, "-l"], timeout=30).stdout
        version = run([binary, "-v"], timeout=30).stdout
    except BenchError:
        return None
    if "Apache/2.4" not in version:
        return None
    builtins = set(re.findall(r"^\s*mod_(\w+)\.c$", listed, re.M))
    builtins.update(re.findall(r"^\s*(\w+)\.c$", listed, re.M))
    modules_dir = next((d for d in MODULES_DIR_CANDIDATES if os.path.exists(
        os.path.join(d, "mod_authz_core.so"))), None)
    if modules_dir is None:
        return None
    apache = Apache(binary, modules_dir, builtins,
                    version.splitlines()[0].split(":", 1)[-1].strip())
    if "mpm_event" not in builtins and not os.path.exists(
            os.path.join(modules_dir, "mod_mpm_event.so")):
        return None
    return apache


def apache_user():
    """(user, group) the Apache children and gunicorn workers run as when
    we are root; None otherwise (they run as us)."""
    if not running_as_root():
        return None
    for user in APACHE_USERS:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            continue
        return user, grp.getgrgid(pw.pw_gid).gr_name
    raise BenchError("running as root but there is no user for the Apache "
                     "children (tried %s)" % ", ".join(APACHE_USERS))


def unreadable_by(user, paths):
    """The first of paths (or a parent) that `user` cannot read/traverse,
    judged by the mode bits; None when all are fine."""
    pw = pwd.getpwnam(user)
    gids = set(os.getgrouplist(user, pw.pw_gid))
    for path in paths:
        path = os.path.realpath(path)
        parts = path.split(os.sep)
        steps = [os.sep.join(parts[:i]) for i in range(2, len(parts) + 1)]
        for i, step in enumerate(steps):
            try:
                st = os.stat(step)
            except OSError:
                return step
            if st.st_uid == pw.pw_uid:
                bits = st.st_mode >> 6
            elif st.st_gid in gids:
                bits = st.st_mode >> 3
            else:
                bits = st.st_mode
            last = i == len(steps) - 1
            need = 0o1 if not last else (0o5 if os.path.isdir(step) else 0o4)
            if bits & need != need:
                return step
    return None


def wrk_version(wrk):
    result = run([wrk, "-v"], check=False, timeout=30)
    first = (result.stdout + result.stderr).strip().splitlines()
    text = first[0].split(" Copyright")[0] if first else ""
    return text[4:] if text.startswith("wrk ") else text or "unknown"


def python_env(prefix, packages, module_path=None):
    """A PythonEnv for the venv at prefix; None when a package is missing."""
    python = os.path.join(prefix, "bin", "python")
    if not os.access(python, os.X_OK):
        return None
    code = ("import sys, json, importlib.metadata as m\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        out[name] = m.version(name)\n"
            "    except m.PackageNotFoundError:\n"
            "        out[name] = None\n"
            "print(json.dumps(out))\n")
    result = run([python, "-c", code] + list(packages), check=False,
                 timeout=60, env=clean_env())
    if result.returncode != 0:
        return None
    import json
    found = json.loads(result.stdout)
    if any(found[name] is None for name in packages):
        return None
    return PythonEnv(prefix, found.pop("python"), found, module_path)


# --- installing --------------------------------------------------------------

def _missing_debian_packages(names):
    if not shutil.which("dpkg-query"):
        return list(names)
    missing = []
    for name in names:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                                capture_output=True, text=True, check=False)
        if "ok installed" not in result.stdout:
            missing.append(name)
    return missing


def apt_install(names, why):
    """Installs Debian packages as root; as anyone else, says what to do."""
    missing = _missing_debian_packages(names)
    if not missing:
        return
    if not running_as_root() or not shutil.which("apt-get"):
        raise BenchError("%s needs the Debian packages %s: install them "
                         "(sudo apt-get install %s) and run again"
                         % (why, " ".join(missing), " ".join(missing)))
    say("installing %s (%s)" % (" ".join(missing), why))
    env = clean_env(DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env, timeout=900)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends"]
        + missing, env=env, timeout=1800)


def _make_venv(prefix, base_python):
    if os.access(os.path.join(prefix, "bin", "python"), os.X_OK):
        return
    say("creating %s from %s" % (prefix, base_python))
    parent = os.path.dirname(prefix)
    os.makedirs(parent, exist_ok=True)
    if running_as_root():
        os.chmod(parent, 0o755)
    run([base_python, "-m", "venv", prefix], timeout=300, env=clean_env())
    run([os.path.join(prefix, "bin", "python"), "-m", "pip", "install", "-q",
         "--upgrade", "pip"], timeout=900, env=clean_env())


def _modwsgi_module(prefix):
    """The mod_wsgi .so of the mod_wsgi package in the venv at prefix."""
    result = run([os.path.join(prefix, "bin", "mod_wsgi-express"),
                  "module-config"], timeout=60, env=clean_env())
    match = re.search(r'^LoadModule\s+wsgi_module\s+"?([^"\n]+)"?',
                      result.stdout, re.M)
    if not match:
        raise BenchError("mod_wsgi-express module-config printed no "
                         "LoadModule line:\n%s" % result.stdout)
    return match.group(1)


def ensure_modwsgi(prefix, install, base_python):
    """The venv with mod_wsgi MODWSGI_VERSION and gunicorn, made if needed."""
    env = python_env(prefix, ["mod_wsgi", "gunicorn"])
    if env is None or env.packages["mod_wsgi"] != MODWSGI_VERSION:
        if not install:
            raise BenchError(
                "%s has no mod_wsgi %s and gunicorn (run without "
                "--no-install to make it)" % (prefix, MODWSGI_VERSION))
        # mod_wsgi compiles against Apache through apxs (apache2-dev).
        apt_install(["apache2-dev", "python3-dev", "python3-venv", "gcc"],
                    "building mod_wsgi")
        _make_venv(prefix, base_python)
        say("installing mod_wsgi %s and gunicorn into %s"
            % (MODWSGI_VERSION, prefix))
        run([os.path.join(prefix, "bin", "python"), "-m", "pip", "install",
             "-q", "mod-wsgi==%s" % MODWSGI_VERSION, "gunicorn"],
            timeout=1800, env=clean_env())
        env = python_env(prefix, ["mod_wsgi", "gunicorn"])
        if env is None:
            raise BenchError("installing mod_wsgi and gunicorn into %s left "
                             "them unimportable" % prefix)
    env.module_path = _modwsgi_module(prefix)
    return env


def ensure_tether(prefix, build, install, base_python):
    """The venv holding Tether; rebuilt from this checkout when `build`."""
    if build:
        if not install:
            raise BenchError("building Tether was asked for with "
                             "--no-install")
        apt_install(["apache2-dev", "python3-dev", "python3-venv", "gcc"],
                    "building Tether")
        _make_venv(prefix, base_python)
        build_dir = os.path.join(bench_home(), "build-tether")
        say("building Tether from %s into %s" % (REPO, prefix))
        # --force-reinstall: the version number does not change between
        # builds of a checkout; the build directory keeps it incremental.
        run([os.path.join(prefix, "bin", "python"), "-m", "pip", "install",
             "-q", "--force-reinstall", "--no-deps",
             "-C", "build-dir=%s" % build_dir, REPO],
            timeout=1800, env=clean_env())
    env = python_env(prefix, ["tether-wsgi"])
    if env is None:
        raise BenchError("%s has no Tether (tether-wsgi) installed" % prefix)
    result = run([env.python, "-c",
                  "import tether; print(tether.module_location())"],
                 timeout=60, env=clean_env())
    env.module_path = result.stdout.strip()
    if not os.path.exists(env.module_path):
        raise BenchError("Tether in %s has no built module (%s)"
                         % (prefix, env.module_path))
    return env


def prepare(args, want):
    """A Toolset for the servers named in `want` (a set of server names)."""
    tools = Toolset()
    install = not args.no_install
    tools.apache_user = apache_user()

    if shutil.which("wrk") is None and install:
        apt_install(["wrk"], "the load generator")
    tools.wrk = shutil.which("wrk")
    if tools.wrk is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    tools.wrk_version = wrk_version(tools.wrk)

    tools.apache = find_apache()
    if tools.apache is None and install:
        apt_install(["apache2"], "the servers under test")
        tools.apache = find_apache()
    if tools.apache is None:
        raise BenchError("no Apache httpd 2.4 with the event MPM "
                         "(Debian: apt-get install apache2)")

    if want & {"tether-embedded", "tether-daemon"}:
        prefix = args.tether_venv or default_tether_venv()
        tools.tether = ensure_tether(
            prefix, build=args.tether_venv is None or args.rebuild_tether,
            install=install, base_python=args.base_python)
    if want & {"modwsgi-embedded", "modwsgi-daemon", "gunicorn"}:
        tools.modwsgi = ensure_modwsgi(args.modwsgi_venv or
                                       default_modwsgi_venv(),
                                       install, args.base_python)

    if tools.apache_user:
        user = tools.apache_user[0]
        for env in (tools.tether, tools.modwsgi):
            if env is None:
                continue
            bad = unreadable_by(user, [env.prefix, env.module_path])
            if bad:
                raise BenchError(
                    "the servers run as %s, who cannot read %s (part of the "
                    "venv %s): use a venv outside /root, e.g. under /opt"
                    % (user, bad, env.prefix))
    return tools


def setup_status(args):
    """What --print-setup reports: which servers could run without
    installing anything."""
    apache = find_apache()
    modwsgi_prefix = args.modwsgi_venv or default_modwsgi_venv()
    modwsgi = python_env(modwsgi_prefix, ["mod_wsgi", "gunicorn"])
    tether_prefix = args.tether_venv or default_tether_venv()
    tether = python_env(tether_prefix, ["tether-wsgi"])
    return {
        "wrk": shutil.which("wrk"),
        "apache": apache.binary if apache else None,
        "modwsgi_venv": modwsgi_prefix,
        "modwsgi_ready": bool(modwsgi and
                              modwsgi.packages["mod_wsgi"] == MODWSGI_VERSION),
        "tether_venv": tether_prefix,
        "tether_ready": tether is not None,
        "python": sys.version.split()[0],
    }
