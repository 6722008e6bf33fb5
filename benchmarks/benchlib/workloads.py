"""The workloads: what one row of the table sends and expects back.

Each WSGI workload is one callable of apps/bench_app.py; the static server
serves a file with the same bytes from the document root (only where the
response is a fixed body: not for the upload nor for the sleeping app).
"""

import os

KIB = 1024
MIB = 1024 * 1024
HELLO = b"Hello world!\n"
UPLOAD_BYTES = 10 * MIB


class Workload:
    def __init__(self, name, label, callable, expect_bytes, static_file=None,
                 body_bytes=0, description=""):
        self.name = name
        self.label = label
        self.callable = callable
        self.expect_bytes = expect_bytes
        self.static_file = static_file
        self.body_bytes = body_bytes
        self.description = description

    @property
    def method(self):
        return "POST" if self.body_bytes else "GET"

    def request_body(self):
        return b"x" * self.body_bytes if self.body_bytes else None

    def path_for(self, kind):
        """The URL path a server of `kind` answers this workload on."""
        if kind.mode == "static":
            return "/" + self.static_file
        return "/"

    def applies_to(self, kind):
        return kind.mode != "static" or self.static_file is not None


WORKLOADS = [
    Workload("hello", "hello world (13 B)", "hello", len(HELLO),
             static_file="hello.txt",
             description="GET; the app returns b\"Hello world!\\n\" "
                         "(13 bytes) with a Content-Length"),
    Workload("100k", "100 KiB response", "bytes_100k", 100 * KIB,
             static_file="100k.bin",
             description="GET; the app returns one prebuilt 100 KiB bytes "
                         "object"),
    Workload("1m", "1 MiB response", "bytes_1m", MIB,
             static_file="1m.bin",
             description="GET; the app returns one prebuilt 1 MiB bytes "
                         "object"),
    Workload("filewrapper-10m", "file_wrapper 10 MiB", "file_wrapper",
             10 * MIB, static_file="file-10m.bin",
             description="GET; the app opens a 10 MiB file and returns "
                         "wsgi.file_wrapper(file, 65536)"),
    Workload("upload-10m", "10 MiB POST body", "upload",
             len(b"%d\n" % UPLOAD_BYTES), body_bytes=UPLOAD_BYTES,
             description="POST of 10 MiB; the app reads wsgi.input to the "
                         "end in 64 KiB reads and answers its size "
                         "(400 if short)"),
    Workload("sleep-10ms", "sleep 10 ms (I/O-bound)", "sleep_10ms",
             len(HELLO),
             description="GET; the app sleeps 10 ms, then returns the 13 "
                         "bytes of hello world"),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}


def write_static_files(htdocs):
    """The files the static server sends and file_wrapper reads: the same
    bytes as the application's bodies."""
    files = {
        "hello.txt": (HELLO, 1),
        "100k.bin": (b"x" * KIB, 100),
        "1m.bin": (b"x" * MIB, 1),
        "file-10m.bin": (b"x" * MIB, 10),
    }
    for name, (block, count) in files.items():
        path = os.path.join(htdocs, name)
        with open(path, "wb") as f:
            for _ in range(count):
                f.write(block)
        os.chmod(path, 0o644)
