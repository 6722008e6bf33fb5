"""A customer's application for tests/integration/test_shared_hosting.py.

It reports who it runs as and, when asked through the query string, what
happens when it reaches for things that are not its own:

    ?open=PATH      open and read a file (or list a directory)
    ?setuid0=1      try to become root again (os.setuid(0))
    ?connect=PATH   connect to a Unix socket (a daemon group's socket); if
                    that works, send one request head frame and report the
                    bytes the other end sent back before closing

The answer is JSON: {"uid", "euid", "gid", "groups", "pid", "group",
"open", "setuid0", "connect": {"ok": ...}}.
"""

import errno
import json
import os
import socket
import struct
from urllib.parse import parse_qs


def _error(exc):
    return {"ok": False, "errno": errno.errorcode.get(exc.errno, exc.errno),
            "error": str(exc)}


def _open(path):
    try:
        if os.path.isdir(path):
            return {"ok": True, "entries": sorted(os.listdir(path))}
        with open(path, "rb") as f:
            return {"ok": True, "bytes": len(f.read())}
    except OSError as exc:
        return _error(exc)


def _connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        return _error(exc)
    # A REQ_HEAD frame (type 1) holding an empty pair list: what an Apache
    # child would send first.
    received = b""
    try:
        sock.sendall(struct.pack(">BBHI", 1, 0, 0, 4) + struct.pack(">I", 0))
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except OSError as exc:
        result = _error(exc)
        result.update(connected=True, received=len(received))
        return result
    finally:
        sock.close()
    return {"ok": True, "connected": True, "received": len(received),
            "types": _frame_types(received)}


def _frame_types(data):
    types = []
    while len(data) >= 8:
        kind, _, _, length = struct.unpack(">BBHI", data[:8])
        types.append(kind)
        data = data[8 + length:]
    return types


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    report = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "pid": os.getpid(),
        "group": environ.get("mod_wsgi.process_group"),
        "cwd": os.getcwd(),
        "umask": _umask(),
    }
    if "open" in query:
        report["open"] = _open(query["open"][0])
    if "setuid0" in query:
        report["setuid0"] = _setuid0()
    if "connect" in query:
        report["connect"] = _connect(query["connect"][0])
    body = json.dumps(report).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _setuid0():
    try:
        os.setuid(0)
    except OSError as exc:
        return _error(exc)
    return {"ok": True}


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return "%04o" % mask
