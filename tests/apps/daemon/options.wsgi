"""Reports, from inside the process (and thread) serving the request, what
the WSGIDaemonProcess options of tests/integration/test_daemon_options.py
should have set: one path per probe, JSON out."""

import ctypes
import ctypes.util
import json
import locale
import os
import socket
import sys
import time


def _json(start_response, data):
    body = json.dumps(data, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _sockets():
    """(listening, connections) of this process among its Unix stream
    sockets: the group's listening socket, and the connections accepted on
    it (their local name is the listening socket's path), as
    {fd: (inode, SO_SNDBUF, SO_RCVBUF)}."""
    listening, accepted = {}, {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue
        if not target.startswith("socket:["):
            continue
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family != socket.AF_UNIX or \
                    sock.type != socket.SOCK_STREAM:
                continue
            info = (int(target[8:-1]),
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                    sock.getsockname())
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                listening[fd] = info
            else:
                accepted[fd] = info
        except OSError:
            continue
        finally:
            sock.close()
    paths = {info[3] for info in listening.values()}
    connections = {fd: info[:3] for fd, info in accepted.items()
                   if info[3] in paths}
    return listening, connections


def _thread_stack_size():
    """The stack size of the thread running this request
    (pthread_getattr_np), in bytes."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.pthread_self.restype = ctypes.c_ulong
    attr = ctypes.create_string_buffer(128)     # pthread_attr_t: 56 bytes
    if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr):
        return None
    size = ctypes.c_size_t()
    try:
        if libc.pthread_attr_getstacksize(attr, ctypes.byref(size)):
            return None
    finally:
        libc.pthread_attr_destroy(attr)
    return size.value


def _report(environ):
    old = os.umask(0)
    os.umask(old)
    listening, connections = _sockets()
    probe = None
    try:
        import daemon_options_probe
        probe = daemon_options_probe.WHERE
    except ImportError:
        pass
    return {
        "pid": os.getpid(),
        "process_group": environ.get("mod_wsgi.process_group"),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "path": sys.path,
        "probe": probe,
        "egg_cache": os.environ.get("PYTHON_EGG_CACHE"),
        "lc_all": os.environ.get("LC_ALL"),
        "lc_ctype": locale.setlocale(locale.LC_CTYPE),
        "codeset": locale.nl_langinfo(locale.CODESET),
        "umask": old,
        "stack_size": _thread_stack_size(),
        "listening": sorted(info[3] for info in listening.values()),
        "connections": sorted(connections.values()),
    }


def _burn(seconds):
    """Spends `seconds` of CPU time in this process."""
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def _stream(total, piece):
    block = b"x" * piece
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield block[:n]
        sent += n


def application(environ, start_response):
    what = environ["PATH_INFO"].strip("/").split("/")[-1]
    query = environ.get("QUERY_STRING") or ""
    if what == "pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "report":
        return _json(start_response, _report(environ))
    if what == "write-file":
        # A file made with the process's umask, in the directory given.
        path = os.path.join(environ["TETHER_SCRATCH"],
                            "umask-%d" % os.getpid())
        with open(path, "w") as f:
            f.write("x")
        return _json(start_response, {"path": path,
                                      "mode": os.stat(path).st_mode & 0o777})
    if what == "burn":
        _burn(float(query or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "sleep":
        time.sleep(float(query or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if what == "header":
        # A response head of about `query` bytes.
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Big", "h" * int(query))])
        return [b"ok"]
    if what == "one-item":
        # One item of `query` bytes, no Content-Length: Apache chunks it.
        # (A generator: a one-item list would get a Content-Length.)
        start_response("200 OK",
                       [("Content-Type", "application/octet-stream")])
        return (item for item in [b"y" * int(query)])
    if what == "stream":
        # `query` bytes in 64 KiB items, no Content-Length.
        start_response("200 OK",
                       [("Content-Type", "application/octet-stream")])
        return _stream(int(query), 65536)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such probe"]
