#!/usr/bin/env python3
"""Tether side by side with mod_wsgi, gunicorn and Apache's static files.

    python3 benchmarks/run.py                 # the full run (see README.md)
    python3 benchmarks/run.py --quick --servers tether-embedded --workloads hello

Installs what is missing (wrk; mod_wsgi and gunicorn in their own venv; Tether
built from this checkout in its own venv), then, for each round, workload and
server (the servers in a different order each round), starts the server,
checks that it answers the workload correctly, and for each concurrency warms
it up and loads it with wrk while sampling its memory.  Writes latest.md and
latest.json into the output directory.  Exit status: 0 when every case ran,
1 when a server failed to start or to answer correctly (the others still
ran and are reported), 2 when the set-up failed.
"""

import argparse
import itertools
import os
import shlex
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import prepare, report, roundtrip  # noqa: E402
from benchlib.load import RssSampler, run_wrk  # noqa: E402
from benchlib.servers import (KINDS_BY_NAME, SERVER_KINDS,  # noqa: E402
                              check_ready, make_server)
from benchlib.util import (BenchError, run, say,  # noqa: E402
                           tree_cpu_seconds)
from benchlib.workloads import (WORKLOADS, WORKLOADS_BY_NAME,  # noqa: E402
                                write_static_files)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = {"duration": 10, "warmup": 2, "rounds": 3}
QUICK = {"duration": 1, "warmup": 0, "rounds": 1}
# Clients of benchmarks/roundtrip.c: the lower concurrency of the table.
ROUND_TRIP_CLIENTS = 16
# Error-log lines worth reporting: processes that crashed.  (Tracebacks are
# not: wrk's end cuts uploads short, which the upload app reports as an
# OSError from wsgi.input; a real application error shows as non-2xx.)
LOG_PROBLEMS = ("exit signal", "Segmentation fault", "TETHER0555",
                "core dumped")
SERVER_SEQUENCE = itertools.count(1)


def _names(text, known, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            "unknown %s %s (known: %s)" % (what, ", ".join(unknown),
                                           ", ".join(known)))
    return names


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Benchmark Tether (embedded and daemon mode) against "
                    "mod_wsgi %s (both modes), gunicorn's gthread worker and "
                    "Apache serving the same bytes as a static file, with wrk."
                    % prepare.MODWSGI_VERSION)
    server_names = [k.name for k in SERVER_KINDS]
    workload_names = [w.name for w in WORKLOADS]
    parser.add_argument(
        "--duration", type=int, default=None, metavar="SECONDS",
        help="measured seconds of wrk per case (default %d; %d with --quick)"
        % (DEFAULTS["duration"], QUICK["duration"]))
    parser.add_argument(
        "--warmup", type=int, default=None, metavar="SECONDS",
        help="seconds of unmeasured load before each case (default %d; %d "
        "with --quick)" % (DEFAULTS["warmup"], QUICK["warmup"]))
    parser.add_argument(
        "--rounds", type=int, default=None,
        help="rounds over all servers; medians are taken over them (default "
        "%d; %d with --quick)" % (DEFAULTS["rounds"], QUICK["rounds"]))
    parser.add_argument(
        "--quick", action="store_true",
        help="a smoke run: 1 s per case, no warm-up, 1 round (explicit "
        "--duration/--warmup/--rounds still win)")
    parser.add_argument(
        "--concurrency", default="16,128", metavar="N,N",
        type=lambda t: [int(x) for x in t.split(",") if x.strip()],
        help="wrk connections, comma-separated (default %(default)s)")
    parser.add_argument(
        "--workloads", default=",".join(workload_names), metavar="NAMES",
        type=lambda t: _names(t, workload_names, "workload"),
        help="comma-separated subset of: " + ", ".join(workload_names)
        + " (default: all)")
    parser.add_argument(
        "--servers", default=",".join(server_names), metavar="NAMES",
        type=lambda t: _names(t, server_names, "server"),
        help="comma-separated subset of: " + ", ".join(server_names)
        + " (default: all)")
    parser.add_argument(
        "--processes", type=int, default=2,
        help="processes of every server: daemon processes, gunicorn workers "
        "and Apache children (default %(default)s)")
    parser.add_argument(
        "--threads", type=int, default=5,
        help="threads per process of the daemon groups and gunicorn "
        "(default %(default)s)")
    parser.add_argument(
        "--apache-threads", type=int, default=None, metavar="N",
        help="threads per Apache child, for every Apache (default: the "
        "largest --concurrency, so that one child can hold every "
        "connection; fewer make the event MPM close keep-alive "
        "connections). In embedded mode they also run Python")
    parser.add_argument(
        "--output-dir", default=os.path.join(HERE, "results"),
        help="where latest.md and latest.json are written (default "
        "benchmarks/results)")
    parser.add_argument(
        "--wrk-threads", type=int, default=1,
        help="wrk threads (default %(default)s: one is enough for these "
        "rates and leaves the second core to the server)")
    parser.add_argument(
        "--timeout", type=int, default=30, metavar="SECONDS",
        help="wrk's per-request timeout (default %(default)s); a slower "
        "response counts as a socket error")
    parser.add_argument(
        "--no-install", action="store_true",
        help="install and build nothing: fail when something is missing")
    parser.add_argument(
        "--tether-venv", default=None, metavar="PATH",
        help="use the Tether installed in this venv as it is, instead of "
        "building this checkout into %s" % prepare.default_tether_venv())
    parser.add_argument(
        "--rebuild-tether", action="store_true",
        help="with --tether-venv: build this checkout into that venv first")
    parser.add_argument(
        "--modwsgi-venv", default=None, metavar="PATH",
        help="the venv with mod_wsgi %s and gunicorn (made if missing; "
        "default %s)" % (prepare.MODWSGI_VERSION,
                         prepare.default_modwsgi_venv()))
    parser.add_argument(
        "--base-python", default=prepare.BASE_PYTHON, metavar="PATH",
        help="the Python the venvs are made from (default %(default)s)")
    parser.add_argument(
        "--keep-work-dir", action="store_true",
        help="keep the generated configs, apps and logs under /tmp")
    parser.add_argument(
        "--update-readme", action="store_true",
        help="also copy the tables into benchmarks/README.md, between its "
        "results markers")
    parser.add_argument(
        "--print-setup", action="store_true",
        help="print, as JSON, what is installed (wrk, Apache, the venvs) "
        "and exit")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.duration < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--duration and --rounds must be >= 1, --warmup >= 0")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs positive numbers")
    if args.processes < 1 or args.threads < 1:
        parser.error("--processes and --threads must be >= 1")
    if args.apache_threads is None:
        args.apache_threads = max(args.concurrency)
    if args.apache_threads < 1:
        parser.error("--apache-threads must be >= 1")
    return args


# --- facts about the run -----------------------------------------------------

def machine_info():
    info = {"nproc": os.cpu_count(), "cpu_model": "unknown",
            "ram_gib": 0.0, "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_gib"] = int(line.split()[1]) / 1024.0 / 1024.0
    except OSError:
        pass
    return info


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def checkout_revision():
    rev = run(["git", "-C", prepare.REPO, "rev-parse", "--short", "HEAD"],
              check=False, timeout=30).stdout.strip()
    if not rev:
        return "unknown"
    dirty = run(["git", "-C", prepare.REPO, "status", "--porcelain", "--",
                 "module", "python", "CMakeLists.txt", "pyproject.toml"],
                check=False, timeout=30).stdout.strip()
    return rev + ("+uncommitted changes" if dirty else "")


def versions(tools, revision):
    """`revision`: the checkout's, read when Tether was built (the tree may
    change during a long run)."""
    out = {"apache": tools.apache.version}
    if tools.tether:
        out["Tether"] = "%s (checkout %s, Python %s)" % (
            tools.tether.packages["tether-wsgi"], revision,
            tools.tether.python_version)
    if tools.modwsgi:
        out["mod_wsgi"] = "%s (Python %s)" % (
            tools.modwsgi.packages["mod_wsgi"], tools.modwsgi.python_version)
        out["gunicorn"] = tools.modwsgi.packages["gunicorn"]
    out["wrk"] = tools.wrk_version
    return out


def human(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    return "%d min %02d s" % (seconds // 60, seconds % 60)


def make_workdir():
    """/tmp/tether-bench-XXXX (0755): the app and the static files, where
    the servers' users can read them."""
    work = tempfile.mkdtemp(prefix="tether-bench-", dir="/tmp")
    os.chmod(work, 0o755)
    for sub in ("apps", "htdocs", "srv"):
        os.mkdir(os.path.join(work, sub))
        os.chmod(os.path.join(work, sub), 0o755)
    app = os.path.join(work, "apps", "bench_app.py")
    shutil.copyfile(os.path.join(HERE, "apps", "bench_app.py"), app)
    os.chmod(app, 0o644)
    write_static_files(os.path.join(work, "htdocs"))
    return work


# --- the run -----------------------------------------------------------------

def plan(args):
    """[(round, workload, [server names in this round's order])]."""
    servers = [k.name for k in SERVER_KINDS if k.name in args.servers]
    steps = []
    for rnd in range(1, args.rounds + 1):
        # Rotate the order each round, so no server always goes first.
        shift = (rnd - 1) % len(servers)
        order = servers[shift:] + servers[:shift]
        for name in args.workloads:
            workload = WORKLOADS_BY_NAME[name]
            names = [n for n in order
                     if workload.applies_to(KINDS_BY_NAME[n])]
            if names:
                steps.append((rnd, workload, names))
    return servers, steps


def log_problems(server):
    lines = [line for line in server.error_log().splitlines()
             if any(p in line for p in LOG_PROBLEMS)]
    return lines[:5]


def measure(args, tools, server, rnd, workload, runs):
    """Warm-up and measured wrk runs of one started server, per
    concurrency; appends a record per run to `runs`."""
    kind = server.kind
    url = server.url(workload.path_for(kind))
    for conc in args.concurrency:
        common = dict(concurrency=conc, threads=args.wrk_threads,
                      timeout=args.timeout, body_bytes=workload.body_bytes)
        if args.warmup:
            run_wrk(tools.wrk, url, duration=args.warmup, **common)
        cpu_before = tree_cpu_seconds(server.pid)
        sampler = RssSampler(server.pid).start()
        try:
            result = run_wrk(tools.wrk, url, duration=args.duration, **common)
        finally:
            peak_kib, processes = sampler.stop()
        # A process that exits during the run takes its CPU time with it;
        # one that starts during the run counts from zero.
        cpu_after = tree_cpu_seconds(server.pid)
        cpu_s = sum(max(0.0, t - cpu_before.get(pid, 0.0))
                    for pid, t in cpu_after.items())
        result.update(round=rnd, workload=workload.name, concurrency=conc,
                      server=kind.name, ok=True, peak_rss_kib=peak_kib,
                      processes=processes, server_cpu_s=round(cpu_s, 3))
        runs.append(result)
        say("round %d  %-16s c=%-4d %-18s %9.1f req/s  p50 %s ms  "
            "p99 %s ms  errors %d/%d  RSS %.1f MiB  CPU %s us/req"
            % (rnd, workload.name, conc, kind.label, result["requests_per_s"],
               report.fmt_ms(result["latency_p50_ms"]),
               report.fmt_ms(result["latency_p99_ms"]),
               result["non2xx"], result["socket_errors"], peak_kib / 1024.0,
               report.fmt_cpu(report.cpu_per_request(result))))


def run_server(args, tools, work, rnd, workload, name, runs, failures,
               notes):
    """Starts one server for one workload, measures it, stops it.

    A failure (start, wrong answer, wrk) is recorded in `failures` and as
    failed runs; the server is stopped whatever happens, Ctrl-C included."""
    kind = KINDS_BY_NAME[name]
    # Short: daemon sockets live under it, within the 108 bytes of a Unix
    # socket path.
    tag = "%03d-%s" % (next(SERVER_SEQUENCE), name)
    server = make_server(kind, tools, work, tag, workload, args.processes,
                         args.threads, args.apache_threads)
    failed = None
    try:
        try:
            server.start()
            check_ready(server, workload)
            measure(args, tools, server, rnd, workload, runs)
        except BenchError as exc:
            failed = str(exc)
        problems = log_problems(server)
    finally:
        try:
            server.stop()
        except BenchError as exc:
            failed = failed or str(exc)
    if problems:
        notes.append({"round": rnd, "workload": workload.name,
                      "server": name, "log": problems})
        say("error_log of %s (%s): %s" % (kind.label, workload.name,
                                          problems[0]))
    if failed:
        say("FAILED round %d %s %s: %s" % (rnd, workload.name, kind.label,
                                            failed))
        failures.append({"round": rnd, "workload": workload.name,
                         "server": name, "error": failed,
                         "server_dir": server.root})
        done = {r["concurrency"] for r in runs if r["round"] == rnd
                and r["workload"] == workload.name and r["server"] == name}
        for conc in args.concurrency:
            if conc not in done:
                runs.append({"round": rnd, "workload": workload.name,
                             "concurrency": conc, "server": name,
                             "ok": False})
    return failed is None


def main(argv=None):
    args = parse_args(argv)
    if args.print_setup:
        import json
        print(json.dumps(prepare.setup_status(args), indent=1))
        return 0
    started = time.time()
    t0 = time.monotonic()
    servers, steps = plan(args)
    revision = checkout_revision()
    try:
        tools = prepare.prepare(args, set(servers))
    except BenchError as exc:
        sys.stderr.write("benchmarks/run.py: %s\n" % exc)
        return 2
    setup_s = time.monotonic() - t0

    cases = sum(len(names) for _, _, names in steps) * len(args.concurrency)
    per_case = args.duration + args.warmup
    say("%d cases of %d s (+%d s warm-up) in %d round(s): at least %s"
        % (cases, args.duration, args.warmup, args.rounds,
           human(cases * per_case)))
    load_start = loadavg()
    if float(load_start.split()[0]) > 0.5 * (os.cpu_count() or 1):
        say("warning: load average %s before the start; something else is "
            "running and the numbers will be noisy" % load_start)

    work = make_workdir()
    runs, failures, notes = [], [], []
    floor = roundtrip.measure(work, ROUND_TRIP_CLIENTS,
                              2000 if args.quick else 20000)
    if "skipped" in floor:
        say("round trip between two processes not measured: %s"
            % floor["skipped"])
    else:
        say("round trip between two processes (benchmarks/roundtrip.c): "
            "%.1f us of CPU" % floor["cpu_us"])
    try:
        for rnd, workload, names in steps:
            for name in names:
                run_server(args, tools, work, rnd, workload, name, runs,
                           failures, notes)
    finally:
        if args.keep_work_dir or failures:
            say("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - t0
    workloads = [WORKLOADS_BY_NAME[n] for n in args.workloads]
    rows = report.aggregate(runs, workloads, args.concurrency, servers)
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z",
                                 time.localtime(started)),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "elapsed_s": round(elapsed, 1),
        "setup_s": round(setup_s, 1),
        "elapsed_human": human(elapsed),
        "command": " ".join(["python3", "benchmarks/run.py"] +
                            [shlex.quote(a) for a in
                             (sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "versions": versions(tools, revision),
        "processes": args.processes,
        "threads": args.threads,
        "apache_threads": args.apache_threads,
        "capacity": ("daemon groups and gunicorn: %d processes x %d threads; "
                     "every Apache: the event MPM with %d children x %d "
                     "threads (in embedded mode these threads run Python; "
                     "in daemon mode they only relay)"
                     % (args.processes, args.threads, args.processes,
                        args.apache_threads)),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "wrk_threads": args.wrk_threads,
        "timeout_s": args.timeout,
        "as_root": os.geteuid() == 0,
        "log_notes": notes,
        "round_trip": floor,
    }
    md_path, json_path = report.write(args.output_dir, meta, runs, rows,
                                      servers, failures)
    say("wrote %s and %s in %s" % (md_path, json_path, human(elapsed)))
    if args.update_readme:
        try:
            report.update_readme(os.path.join(HERE, "README.md"), md_path)
            say("updated the results in benchmarks/README.md")
        except BenchError as exc:
            say("could not update benchmarks/README.md: %s" % exc)
    sys.stdout.write(report.summary_table(rows, servers) + "\n\n"
                     + report.targets_table(rows) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
