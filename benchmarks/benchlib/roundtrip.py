"""The floor under daemon mode: benchmarks/roundtrip.c, built and run once
per harness run.  It times a bare request/response round trip between two
processes over a Unix socket (epoll, wake-ups, context switches and all),
the least a daemon-mode request can cost over an embedded-mode one on this
machine."""

import os
import re
import shutil

from .util import BenchError, run

SOURCE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "roundtrip.c")
_LINE = re.compile(r"^roundtrip: clients (\d+) round_trips (\d+) "
                   r"cpu_us ([0-9.]+) wall_us ([0-9.]+)$", re.M)


def parse(output):
    """The figures of roundtrip's output line, or None."""
    m = _LINE.search(output)
    if not m:
        return None
    return {"clients": int(m.group(1)), "round_trips": int(m.group(2)),
            "cpu_us": float(m.group(3)), "wall_us": float(m.group(4))}


def measure(workdir, clients, round_trips):
    """Builds roundtrip.c into workdir with the system's C compiler and runs
    it: {"clients", "round_trips", "cpu_us", "wall_us"}, or {"skipped":
    reason} when it cannot be built or run (the benchmark goes on)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return {"skipped": "no C compiler (install gcc)"}
    exe = os.path.join(workdir, "roundtrip")
    try:
        run([cc, "-O2", "-o", exe, SOURCE], timeout=120)
        out = run([exe, str(clients), str(round_trips)], timeout=300)
    except BenchError as exc:
        return {"skipped": str(exc).splitlines()[0]}
    figures = parse(out.stdout)
    if figures is None:
        return {"skipped": "unexpected output: %r" % out.stdout[:200]}
    return figures
