"""Small helpers shared by the harness: processes, ports, templates."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "templates")


class BenchError(Exception):
    """Something the harness could not do; its message says what and why."""


def say(message):
    """A progress line on stderr (stdout stays free for --print-setup)."""
    sys.stderr.write("==> %s\n" % message)
    sys.stderr.flush()


def running_as_root():
    return os.geteuid() == 0


def clean_env(**extra):
    """The environment for the servers: none of our PYTHON* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra)
    return env


def run(cmd, *, timeout=None, check=True, **kwargs):
    """subprocess.run with text output captured; BenchError on failure."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True,
                                timeout=timeout, check=False, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError("%s: %s" % (" ".join(cmd), exc)) from None
    if check and result.returncode != 0:
        raise BenchError("%s exited with %d:\n%s%s"
                         % (" ".join(cmd), result.returncode,
                            result.stdout[-3000:], result.stderr[-3000:]))
    return result


# --- templates ---------------------------------------------------------------

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def render(name, values):
    """benchmarks/templates/<name> with each @KEY@ replaced by values[KEY]."""
    with open(os.path.join(TEMPLATES, name)) as f:
        text = f.read()

    def substitute(match):
        key = match.group(1)
        if key not in values:
            raise BenchError("template %s: no value for @%s@" % (name, key))
        return str(values[key])

    return _PLACEHOLDER.sub(substitute, text)


# --- ports and processes -----------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _parents():
    """{pid: parent pid} of every process (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def process_tree(root):
    """root and all its descendants that are alive, root first."""
    if root is None or not pid_alive(root):
        return []
    children = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_kib(pid):
    """VmRSS of pid in KiB, or 0 when it is gone (or a kernel thread)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU seconds of pid (all its threads), or None when
    it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(_TICKS)
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_seconds(root):
    """{pid: CPU seconds} of root and its living descendants."""
    out = {}
    for pid in process_tree(root):
        seconds = cpu_seconds(pid)
        if seconds is not None:
            out[pid] = seconds
    return out


def stop_tree(root, tree, deadline=30.0):
    """SIGTERM to root, then waits for every pid of `tree` to be gone.

    Whatever of `tree` (processes this harness started) is still alive at
    the deadline gets SIGKILL; returns the pids that had to be killed."""
    try:
        os.kill(root, signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not any(pid_alive(p) for p in tree):
            return []
        time.sleep(0.05)
    left = [p for p in tree if pid_alive(p)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left
