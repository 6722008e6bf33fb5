"""Medians over rounds, the ratios, and the Markdown and JSON outputs."""

import json
import os
import re
import statistics

from .servers import KINDS_BY_NAME, SERVER_KINDS
from .util import BenchError
from .workloads import WORKLOADS_BY_NAME

# (key, heading, numerator, denominator): requests/s of one server over
# another's, as the median of the per-round ratios (both measured in the
# same round, minutes apart at most).
RATIOS = [
    ("tether_vs_modwsgi_embedded", "Tether/mod_wsgi embedded",
     "tether-embedded", "modwsgi-embedded"),
    ("tether_vs_modwsgi_daemon", "Tether/mod_wsgi daemon",
     "tether-daemon", "modwsgi-daemon"),
    ("tether_daemon_vs_gunicorn", "Tether daemon/gunicorn",
     "tether-daemon", "gunicorn"),
    ("tether_daemon_vs_embedded", "Tether daemon/embedded",
     "tether-daemon", "tether-embedded"),
    ("tether_daemon_vs_static", "Tether daemon/static",
     "tether-daemon", "static"),
]

# Where each ratio column goes in the summary table: after its numerator's
# partner column.
SUMMARY_COLUMNS = [
    ("server", "tether-embedded"),
    ("server", "modwsgi-embedded"),
    ("ratio", "tether_vs_modwsgi_embedded"),
    ("server", "tether-daemon"),
    ("server", "modwsgi-daemon"),
    ("ratio", "tether_vs_modwsgi_daemon"),
    ("server", "gunicorn"),
    ("ratio", "tether_daemon_vs_gunicorn"),
    ("server", "static"),
    ("ratio", "tether_daemon_vs_embedded"),
    ("ratio", "tether_daemon_vs_static"),
]

SHORT_LABELS = {
    "tether-embedded": "Tether emb.",
    "tether-daemon": "Tether daemon",
    "modwsgi-embedded": "mod_wsgi emb.",
    "modwsgi-daemon": "mod_wsgi daemon",
    "gunicorn": "gunicorn",
    "static": "static file",
    "tether_vs_modwsgi_embedded": "**Tether/mod_wsgi emb.**",
    "tether_vs_modwsgi_daemon": "**Tether/mod_wsgi daemon**",
    "tether_daemon_vs_gunicorn": "**Tether daemon/gunicorn**",
    "tether_daemon_vs_embedded": "Tether daemon/emb.",
    "tether_daemon_vs_static": "Tether daemon/static",
}


SOCKET_ERROR_KINDS = ("connect", "read", "write", "timeout")

# The targets this harness was built to check (benchmarks/README.md):
# (text, workloads, ratio keys, lowest ratio) for requests/s; the error
# and memory targets are checked on every row.
RATIO_TARGETS = [
    ("hello world, daemon mode: at least 1.6 x mod_wsgi daemon mode",
     ("hello",), ("tether_vs_modwsgi_daemon",), 1.6),
    ("hello world, daemon mode: at least gunicorn gthread",
     ("hello",), ("tether_daemon_vs_gunicorn",), 1.0),
    ("hello world, embedded mode: at least 1.2 x mod_wsgi embedded mode",
     ("hello",), ("tether_vs_modwsgi_embedded",), 1.2),
    ("hello world: Tether daemon mode at least 0.8 x Tether embedded mode",
     ("hello",), ("tether_daemon_vs_embedded",), 0.8),
    ("file_wrapper 10 MiB, daemon mode: at least 0.8 x Apache's static file",
     ("filewrapper-10m",), ("tether_daemon_vs_static",), 0.8),
    ("1 MiB response and 10 MiB upload: at least mod_wsgi, in both modes",
     ("1m", "upload-10m"),
     ("tether_vs_modwsgi_embedded", "tether_vs_modwsgi_daemon"), 1.0),
]
TETHER_SERVERS = ("tether-embedded", "tether-daemon")
# Tether's server -> mod_wsgi's of the same mode, for peak RSS.
RSS_PAIRS = (("tether-embedded", "modwsgi-embedded"),
             ("tether-daemon", "modwsgi-daemon"))


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs, workloads, concurrencies, servers):
    """Rows (one per workload x concurrency) from the per-round records."""
    rows = []
    for workload in workloads:
        for conc in concurrencies:
            cells = {}
            for name in servers:
                kind = KINDS_BY_NAME[name]
                if not workload.applies_to(kind):
                    continue
                mine = [r for r in runs if r["workload"] == workload.name
                        and r["concurrency"] == conc and r["server"] == name]
                ok = [r for r in mine if r.get("ok")]
                cell = {
                    "rounds": len(ok),
                    "failed_rounds": len(mine) - len(ok),
                    "requests_per_s": _median(
                        r["requests_per_s"] for r in ok),
                    "latency_p50_ms": _median(
                        r["latency_p50_ms"] for r in ok),
                    "latency_p99_ms": _median(
                        r["latency_p99_ms"] for r in ok),
                    "non2xx": sum(r["non2xx"] for r in ok),
                    "socket_errors": sum(r["socket_errors"] for r in ok),
                    "socket_errors_by_kind": {
                        kind: sum(r[kind + "_errors"] for r in ok)
                        for kind in SOCKET_ERROR_KINDS},
                    "requests": sum(r["requests"] for r in ok),
                    "peak_rss_mib": _median(
                        r["peak_rss_kib"] / 1024.0 for r in ok),
                    "cpu_us_per_request": _median(
                        cpu_per_request(r) for r in ok),
                    "processes": max((r["processes"] for r in ok), default=None),
                }
                cells[name] = cell
            ratios, ranges = {}, {}
            for key, _, num, den in RATIOS:
                if num not in cells or den not in cells:
                    continue
                per_round = []
                for rnd in sorted({r["round"] for r in runs}):
                    a = _rps(runs, workload.name, conc, num, rnd)
                    b = _rps(runs, workload.name, conc, den, rnd)
                    if a is not None and b:
                        per_round.append(a / b)
                ratios[key] = _median(per_round)
                if per_round:
                    ranges[key] = [min(per_round), max(per_round)]
            rows.append({"workload": workload.name, "concurrency": conc,
                         "servers": cells, "ratios": ratios,
                         "ratio_ranges": ranges})
    return rows


def _rps(runs, workload, conc, server, rnd):
    for r in runs:
        if (r["workload"] == workload and r["concurrency"] == conc
                and r["server"] == server and r["round"] == rnd
                and r.get("ok")):
            return r["requests_per_s"]
    return None


# --- formatting --------------------------------------------------------------

def fmt_rps(value):
    if value is None:
        return "failed"
    return "%.0f" % value if value >= 100 else "%.1f" % value


def fmt_ms(value):
    if value is None:
        return "-"
    if value < 10:
        return "%.2f" % value
    return "%.1f" % value if value < 100 else "%.0f" % value


def cpu_per_request(run):
    """Microseconds of the server's CPU (user + system, all its processes)
    per request of one measured run; None when not measured."""
    cpu_s, requests = run.get("server_cpu_s"), run.get("requests")
    if cpu_s is None or not requests:
        return None
    return cpu_s / requests * 1e6


def fmt_cpu(value):
    if value is None:
        return "-"
    return "%.1f" % value if value < 1000 else "%.0f" % value


def fmt_ratio(value):
    return "-" if value is None else "%.2f" % value


def fmt_ratio_range(row, key):
    """"2.85 (2.41-3.10)": the median and the lowest and highest per-round
    ratio; only the median with one round."""
    value = row["ratios"].get(key)
    low, high = row.get("ratio_ranges", {}).get(key, (value, value))
    if value is None or low == high:
        return fmt_ratio(value)
    return "%s (%s-%s)" % (fmt_ratio(value), fmt_ratio(low), fmt_ratio(high))


def _cell_name(row):
    return "%s c=%d" % (WORKLOADS_BY_NAME[row["workload"]].label,
                        row["concurrency"])


def check_targets(rows):
    """[(target, outcome, details)]: outcome "met", "missed" or "not
    measured" (a server or workload of the target was left out); details
    lists every cell, the misses first."""
    results = []
    for text, workloads, keys, lowest in RATIO_TARGETS:
        met, missed = [], []
        for row in rows:
            if row["workload"] not in workloads:
                continue
            for key in keys:
                value = row["ratios"].get(key)
                if value is None:
                    continue
                label = "%s%s: %s" % (
                    _cell_name(row),
                    ", " + SHORT_LABELS[key].strip("*") if len(keys) > 1
                    else "", fmt_ratio_range(row, key))
                (met if value >= lowest else missed).append(label)
        results.append(_outcome(text, met, missed))
    met, missed = [], []
    for row in rows:
        for name in TETHER_SERVERS:
            cell = row["servers"].get(name)
            if cell is None or cell["requests_per_s"] is None:
                continue
            errors = cell["non2xx"] + cell["socket_errors"]
            label = "%s, %s: %s" % (_cell_name(row), KINDS_BY_NAME[name].label,
                                    "%d non-2xx, %s socket" % (
                                        cell["non2xx"],
                                        fmt_socket_errors(cell))
                                    if errors else "0")
            (missed if errors or cell["failed_rounds"] else met).append(label)
    results.append(_outcome("zero errors in every row (Tether's cells)", met,
                            missed, list_met=False))
    met, missed = [], []
    for row in rows:
        for ours, theirs in RSS_PAIRS:
            a, b = row["servers"].get(ours), row["servers"].get(theirs)
            if not a or not b or None in (a["peak_rss_mib"],
                                          b["peak_rss_mib"]):
                continue
            label = "%s, %s: %.1f against %.1f MiB" % (
                _cell_name(row), KINDS_BY_NAME[ours].label.split(" ", 1)[1],
                a["peak_rss_mib"], b["peak_rss_mib"])
            (met if a["peak_rss_mib"] <= b["peak_rss_mib"]
             else missed).append(label)
    results.append(_outcome("peak RSS no higher than mod_wsgi's in the same "
                            "mode", met, missed, list_met=False))
    return results


def _outcome(text, met, missed, list_met=True):
    """(text, outcome, details) of one target from its cells' labels."""
    if not met and not missed:
        return (text, "not measured", "")
    if list_met:
        shown = missed + met
    elif missed:
        shown = missed + (["%d other cell(s) met" % len(met)] if met else [])
    else:
        shown = ["all %d cells" % len(met)]
    return (text, "missed" if missed else "met", "; ".join(shown))


def targets_table(rows):
    body = [[text, "**%s**" % outcome if outcome == "missed" else outcome,
             details] for text, outcome, details in check_targets(rows)]
    return _table(["target", "result", "cells (a ratio: its median, and "
                   "its lowest and highest round in brackets)"], body,
                  text_columns=3)


def fmt_socket_errors(cell):
    """"0", or the total with its kinds: "2790 (read)", "12 (read 10,
    timeout 2)"."""
    if not cell["socket_errors"]:
        return "0"
    kinds = [(k, n) for k, n in cell["socket_errors_by_kind"].items() if n]
    if len(kinds) == 1:
        return "%d (%s)" % (cell["socket_errors"], kinds[0][0])
    return "%d (%s)" % (cell["socket_errors"],
                        ", ".join("%s %d" % kn for kn in kinds))


def _table(header, rows, text_columns=2):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(rows, servers):
    columns = [(what, key) for what, key in SUMMARY_COLUMNS
               if (what == "server" and key in servers)
               or (what == "ratio" and any(key in r["ratios"] for r in rows))]
    header = ["workload", "c"] + [SHORT_LABELS[key] for _, key in columns]
    body = []
    for row in rows:
        cells = [WORKLOADS_BY_NAME[row["workload"]].label,
                 str(row["concurrency"])]
        for what, key in columns:
            if what == "server":
                cell = row["servers"].get(key)
                cells.append("-" if cell is None
                             else fmt_rps(cell["requests_per_s"]))
            else:
                value = row["ratios"].get(key)
                text = fmt_ratio(value)
                cells.append("**%s**" % text if value is not None
                             and key.startswith("tether_vs") else text)
        body.append(cells)
    return _table(header, body)


def detail_table(rows, servers):
    header = ["workload", "c", "server", "req/s", "p50 ms", "p99 ms",
              "non-2xx", "socket errors", "peak RSS MiB (processes)",
              "CPU us/req"]
    body = []
    for row in rows:
        for name in servers:
            cell = row["servers"].get(name)
            if cell is None:
                continue
            rss = ("-" if cell["peak_rss_mib"] is None else "%.1f (%d)"
                   % (cell["peak_rss_mib"], cell["processes"] or 0))
            body.append([WORKLOADS_BY_NAME[row["workload"]].label,
                         str(row["concurrency"]),
                         KINDS_BY_NAME[name].label,
                         fmt_rps(cell["requests_per_s"]),
                         fmt_ms(cell["latency_p50_ms"]),
                         fmt_ms(cell["latency_p99_ms"]),
                         str(cell["non2xx"]), fmt_socket_errors(cell),
                         rss, fmt_cpu(cell.get("cpu_us_per_request"))])
    return _table(header, body, text_columns=3)


def round_trip_line(floor):
    """The machine's floor under daemon mode, from benchmarks/roundtrip.c."""
    if not floor:
        return "- Round trip between two processes: not measured."
    if "skipped" in floor:
        return ("- Round trip between two processes: not measured (%s)."
                % floor["skipped"])
    return ("- A bare round trip between two processes over a Unix socket "
            "(`benchmarks/roundtrip.c`, %d clients: epoll, wake-ups and "
            "context switches, no request), the least daemon mode can add "
            "to a request: %.1f us of CPU, %.1f us elapsed."
            % (floor["clients"], floor["cpu_us"], floor["wall_us"]))


def markdown(meta, rows, servers, failures):
    m = meta
    machine = m["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Measured %s with `%s`, in %s." % (m["finished"], m["command"],
                                           m["elapsed_human"]),
        "",
        "- Machine: %d CPUs (%s), %.1f GiB RAM, Linux %s; load average "
        "%s at the start, %s at the end."
        % (machine["nproc"], machine["cpu_model"], machine["ram_gib"],
           machine["kernel"], m["loadavg_start"], m["loadavg_end"]),
        "- Software: %s; %s" % (m["versions"]["apache"], ", ".join(
            "%s %s" % (k, v) for k, v in m["versions"].items()
            if k != "apache")) + ".",
        "- Capacity: %s; KeepAlive On, KeepAliveTimeout 5 s, unlimited "
        "requests per connection, for every server."
        % m["capacity"],
        round_trip_line(m.get("round_trip")),
        "- Each case: %d s of warm-up, then %d s of wrk (%s thread(s), "
        "timeout %d s); %d round(s), the servers interleaved; the figures "
        "are medians over the rounds, errors are totals, the ratios are "
        "medians of the per-round ratios of requests/s."
        % (m["warmup_s"], m["duration_s"], m["wrk_threads"],
           m["timeout_s"], m["rounds"]),
        "",
        "## Requests per second",
        "",
        summary_table(rows, servers),
        "",
        "## Targets",
        "",
        "Each target of benchmarks/README.md, checked on this run's rows: "
        "the ratios are medians of the per-round ratios, with the lowest "
        "and highest round in brackets.",
        "",
        targets_table(rows),
        "",
        "## Latency, errors and memory",
        "",
        "Peak RSS is the highest sum of VmRSS over all the processes of the "
        "server (Apache's parent, its children and daemon processes; "
        "gunicorn's arbiter and workers), sampled every 100 ms during the "
        "measured run. CPU us/req is the CPU time (user and system) of all "
        "those processes during the measured run, divided by the requests "
        "wrk counted; the load generator's own CPU is not in it.",
        "",
        detail_table(rows, servers),
        "",
    ]
    lines += problems(rows, servers, failures, meta.get("log_notes", []))
    return "\n".join(lines)


def problems(rows, servers, failures, log_notes):
    """The "Errors" section: failures, crashes, non-2xx and socket errors
    other than reads one by one; read errors summed per server."""
    lines = ["## Errors", ""]
    for f in failures:
        lines.append("- FAILED: round %d, %s, %s: %s" % (
            f["round"], WORKLOADS_BY_NAME[f["workload"]].label,
            KINDS_BY_NAME[f["server"]].label, f["error"].splitlines()[0]))
    for note in log_notes:
        lines.append("- error_log of %s (round %d, %s): `%s`" % (
            KINDS_BY_NAME[note["server"]].label, note["round"],
            WORKLOADS_BY_NAME[note["workload"]].label, note["log"][0]))
    for row in rows:
        for name, cell in row["servers"].items():
            other = cell["socket_errors"] - \
                cell["socket_errors_by_kind"]["read"]
            if cell["non2xx"] or other:
                lines.append("- %s at c=%d, %s: %d non-2xx of %d responses; "
                             "socket errors: %s" % (
                                 WORKLOADS_BY_NAME[row["workload"]].label,
                                 row["concurrency"],
                                 KINDS_BY_NAME[name].label, cell["non2xx"],
                                 cell["requests"], fmt_socket_errors(cell)))
    if len(lines) == 2:
        lines.append("No failures, no non-2xx responses, no connect, write "
                     "or timeout errors.")
    lines.append("")
    reads = []
    for name in servers:
        cells = [r["servers"][name] for r in rows if name in r["servers"]]
        read = sum(c["socket_errors_by_kind"]["read"] for c in cells)
        if not read:
            reads.append("%s none" % KINDS_BY_NAME[name].label)
            continue
        requests = sum(c["requests"] for c in cells)
        hit = sum(1 for c in cells if c["socket_errors_by_kind"]["read"])
        reads.append("%s %d in %d of %d rows (%.1f %% of its requests)"
                     % (KINDS_BY_NAME[name].label, read, hit, len(cells),
                        100.0 * read / max(1, read + requests)))
    lines += ["Read errors (connections the server closed while wrk used "
              "them; an Apache whose threads are all busy closes idle "
              "keep-alive connections, see benchmarks/README.md): "
              + "; ".join(reads) + ".", ""]
    return lines


def write(output_dir, meta, runs, rows, servers, failures):
    """Writes latest.md and latest.json into output_dir; returns both paths."""
    os.makedirs(output_dir, exist_ok=True)
    md_path = os.path.join(output_dir, "latest.md")
    json_path = os.path.join(output_dir, "latest.json")
    with open(md_path, "w") as f:
        f.write(markdown(meta, rows, servers, failures))
    document = {
        "schema": 1,
        "meta": meta,
        "servers": [{"name": k.name, "label": k.label}
                    for k in SERVER_KINDS if k.name in servers],
        "ratios": [{"name": key, "label": label, "numerator": num,
                    "denominator": den} for key, label, num, den in RATIOS],
        "rows": rows,
        "runs": [{k: v for k, v in r.items() if k != "wrk_output"}
                 for r in runs],
        "failures": failures,
    }
    with open(json_path, "w") as f:
        json.dump(document, f, indent=1, sort_keys=False)
        f.write("\n")
    return md_path, json_path


README_BEGIN = "<!-- results:begin (written by run.py --update-readme) -->"
README_END = "<!-- results:end -->"


def update_readme(readme_path, md_path):
    """Replaces what is between the results markers of readme_path with
    latest.md, its headings one level down and without its title."""
    with open(md_path) as f:
        results = f.read()
    results = re.sub(r"\A# .*\n\n?", "", results)
    results = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", results,
                     flags=re.M)
    with open(readme_path) as f:
        text = f.read()
    start = text.find(README_BEGIN)
    end = text.find(README_END)
    if start < 0 or end < start:
        raise BenchError("%s has no %s ... %s markers"
                         % (readme_path, README_BEGIN, README_END))
    text = (text[:start + len(README_BEGIN)] + "\n" + results.strip()
            + "\n" + text[end:])
    with open(readme_path, "w") as f:
        f.write(text)
