"""Restart a daemon process when the application's Python source changes:
`tether-express start-server --reload-on-changes`, for development.

The generated configuration runs a small script in each daemon process
(WSGIImportScript, in the application's own interpreter) that calls
start().  A thread then looks, every `interval` seconds, at the files of
the modules in sys.modules that do not come from the standard library or
site-packages (the application's own code: its directory, the working
directory, --python-path entries).  When one of them changes or goes away,
the thread sends SIGUSR1 to its own process: a daemon process takes it as
a graceful stop (it finishes the requests in flight within
eviction-timeout), and Apache's parent starts a fresh one, which imports
the new code.

Nothing here runs in Apache's own children: in embedded mode there is no
process of the application's alone that could be restarted.
"""

import os
import signal
import site
import sys
import sysconfig
import threading
import time

DEFAULT_INTERVAL = 1.0
THREAD_NAME = "tether-reloader"

_lock = threading.Lock()
_monitor = None


def library_dirs():
    """The directories whose modules are never watched: the standard
    library, site-packages (of the venv and of the base Python) and
    tether's own package."""
    dirs = set()
    for scheme_paths in (sysconfig.get_paths(),
                         sysconfig.get_paths(vars={
                             "base": sys.base_prefix,
                             "platbase": sys.base_exec_prefix})):
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            if scheme_paths.get(key):
                dirs.add(scheme_paths[key])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:      # pragma: no cover - old virtualenv's site
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        dirs.add(user_site)
    dirs.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(sorted({os.path.realpath(d) for d in dirs}))


def source_of(module):
    """The Python source file of a module, or None (built-in, namespace
    package, extension, or a module with no file)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path:
        return None
    if path.endswith((".pyc", ".pyo")):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        path = origin if isinstance(origin, str) and \
            origin.endswith(".py") else path[:-1]
    if not path.endswith(".py"):
        return None
    return os.path.realpath(os.path.abspath(path))


def _under(path, dirs):
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


def watched_files(modules, excluded, skip=()):
    """The source files of `modules` (a dict like sys.modules) outside the
    `excluded` directories and other than the `skip` files."""
    found = set()
    for module in list(modules.values()):
        path = source_of(module)
        if path and path not in skip and not _under(path, excluded):
            found.add(path)
    return found


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class Monitor:
    """Polls the watched files' modification times; calls `on_change(path)`
    once, for the first file that changed, and stops."""

    def __init__(self, interval=DEFAULT_INTERVAL, skip=(), modules=None,
                 excluded=None, on_change=None):
        self.interval = interval
        self.skip = {os.path.realpath(p) for p in skip}
        self.modules = sys.modules if modules is None else modules
        self.excluded = library_dirs() if excluded is None else excluded
        self.on_change = on_change or restart_process
        self.known = {}         # path -> mtime when first seen
        self.changed = None
        self._stop = threading.Event()
        self._thread = None

    def check(self):
        """One look: returns the path of a changed file, or None."""
        for path in watched_files(self.modules, self.excluded, self.skip):
            if path not in self.known:
                self.known[path] = _mtime(path)
        for path, seen in self.known.items():
            if _mtime(path) != seen:
                return path
        return None

    def run(self):
        while not self._stop.wait(self.interval):
            try:
                path = self.check()
            except Exception as exc:   # keep watching: a module mid-import
                print("tether.reloader: %s: %s" % (type(exc).__name__, exc),
                      file=sys.stderr)
                continue
            if path is not None:
                self.changed = path
                self.on_change(path)
                return

    def start(self):
        self.check()
        self._thread = threading.Thread(target=self.run, name=THREAD_NAME,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def restart_process(path):
    """Ask this daemon process to stop gracefully; Apache's parent starts a
    new one."""
    print("tether.reloader: %s changed; restarting daemon process %d"
          % (path, os.getpid()), file=sys.stderr)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGUSR1)


def start(interval=DEFAULT_INTERVAL, skip=()):
    """Start this process's monitor (once; later calls return it)."""
    global _monitor
    with _lock:
        if _monitor is None:
            _monitor = Monitor(interval=interval, skip=skip).start()
        return _monitor
