"""Load with wrk, and the peak memory of a server while it is loaded."""

import json
import os
import subprocess
import threading
import time

from .util import BenchError, clean_env, process_tree, rss_kib

LUA_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "wrk", "bench.lua")
RESULT_PREFIX = "BENCH_RESULT "


def run_wrk(wrk, url, *, concurrency, duration, threads, timeout,
            body_bytes=0):
    """One wrk run; returns the numbers of the script's BENCH_RESULT line:

    requests, requests_per_s, latency_p50_ms / p90 / p99 / max / mean,
    non2xx and connect/read/write/timeout errors (socket_errors: their sum),
    plus `wrk_output` (its text, for the JSON)."""
    cmd = [wrk, "--latency",
           "-t", str(max(1, min(threads, concurrency))),
           "-c", str(concurrency),
           "-d", "%ds" % duration,
           "--timeout", "%ds" % timeout,
           "-s", LUA_SCRIPT, url]
    env = clean_env(BENCH_BODY_BYTES=str(body_bytes))
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                timeout=duration + timeout + 60, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: %s" % " ".join(cmd)) from None
    line = next((l for l in result.stdout.splitlines()
                 if l.startswith(RESULT_PREFIX)), None)
    if result.returncode != 0 or line is None:
        raise BenchError("wrk failed (exit %d): %s\n%s%s"
                         % (result.returncode, " ".join(cmd), result.stdout,
                            result.stderr))
    raw = json.loads(line[len(RESULT_PREFIX):])
    seconds = raw["duration_us"] / 1e6
    out = {
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / seconds if seconds else 0.0,
        "seconds": seconds,
        "bytes_read": raw["bytes"],
        "non2xx": raw["non2xx"],
        "connect_errors": raw["connect_errors"],
        "read_errors": raw["read_errors"],
        "write_errors": raw["write_errors"],
        "timeout_errors": raw["timeout_errors"],
    }
    out["socket_errors"] = sum(out[k] for k in (
        "connect_errors", "read_errors", "write_errors", "timeout_errors"))
    for key in ("p50", "p90", "p99", "max", "mean"):
        out["latency_%s_ms" % key] = raw["latency_%s_us" % key] / 1000.0
    out["wrk_output"] = result.stdout.replace(line + "\n", "")
    return out


class RssSampler:
    """Samples the summed VmRSS of a process tree every `interval` seconds
    in a thread, from start() to stop(); stop() returns the peak in KiB and
    the number of processes at that moment.

    The tree (the root pid and its descendants) is re-read every second, so
    daemon processes that appear or are replaced are counted."""

    def __init__(self, root_pid, interval=0.1, rescan=1.0):
        self.root_pid = root_pid
        self.interval = interval
        self.rescan = rescan
        self.peak_kib = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pids, scanned = [], 0.0
        while True:
            now = time.monotonic()
            if now - scanned >= self.rescan:
                pids, scanned = process_tree(self.root_pid), now
            total = sum(rss_kib(pid) for pid in pids)
            self.samples += 1
            if total > self.peak_kib:
                self.peak_kib = total
                self.peak_processes = len(pids)
            if self._stop.wait(self.interval):
                return

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_kib, self.peak_processes
