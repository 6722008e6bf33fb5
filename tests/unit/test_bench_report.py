"""benchmarks/benchlib/report.py: the per-round ratio ranges and the target
checks, on made-up rounds (no server; the harness itself runs in
tests/integration/test_benchmarks_smoke.py)."""

import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

from benchlib import report  # noqa: E402
from benchlib.workloads import WORKLOADS_BY_NAME  # noqa: E402

ALL = ["tether-embedded", "tether-daemon", "modwsgi-embedded",
       "modwsgi-daemon", "gunicorn", "static"]


def record(workload, server, rnd, rps, rss_mib=50.0, non2xx=0, reads=0,
           conc=16):
    return {"workload": workload, "concurrency": conc, "server": server,
            "round": rnd, "ok": True, "requests_per_s": rps,
            "latency_p50_ms": 1.0, "latency_p99_ms": 2.0, "non2xx": non2xx,
            "socket_errors": reads, "connect_errors": 0,
            "read_errors": reads, "write_errors": 0, "timeout_errors": 0,
            "requests": int(rps * 5), "peak_rss_kib": rss_mib * 1024,
            "processes": 3}


def rows_of(runs, workloads=("hello",), servers=ALL):
    return report.aggregate(runs, [WORKLOADS_BY_NAME[w] for w in workloads],
                            [16], servers)


def outcomes(rows):
    return {text: (outcome, details)
            for text, outcome, details in report.check_targets(rows)}


def hello_runs(daemon=(300, 300, 300)):
    """Three rounds of hello world where every target holds, Tether's
    daemon answering `daemon` requests/s in the rounds."""
    runs = []
    for rnd, d in enumerate(daemon):
        runs += [record("hello", "tether-embedded", rnd, 300),
                 record("hello", "tether-daemon", rnd, d),
                 record("hello", "modwsgi-embedded", rnd, 200),
                 record("hello", "modwsgi-daemon", rnd, 100),
                 record("hello", "gunicorn", rnd, 100),
                 record("hello", "static", rnd, 400)]
    return runs


def test_ratio_ranges_are_the_lowest_and_highest_round():
    row = rows_of(hello_runs(daemon=(240, 300, 330)))[0]
    assert row["ratios"]["tether_daemon_vs_embedded"] == pytest.approx(1.0)
    assert row["ratio_ranges"]["tether_daemon_vs_embedded"] == [
        pytest.approx(0.8), pytest.approx(1.1)]
    assert report.fmt_ratio_range(row, "tether_daemon_vs_embedded") \
        == "1.00 (0.80-1.10)"


def test_targets_all_met_on_hello_world():
    result = outcomes(rows_of(hello_runs()))
    daemon = result["hello world, daemon mode: at least 1.6 x mod_wsgi "
                    "daemon mode"]
    assert daemon == ("met", "hello world (13 B) c=16: 3.00")
    assert result["hello world: Tether daemon mode at least 0.8 x Tether "
                  "embedded mode"][0] == "met"
    assert result["zero errors in every row (Tether's cells)"] == (
        "met", "all 2 cells")
    assert result["peak RSS no higher than mod_wsgi's in the same mode"] \
        == ("met", "all 2 cells")
    # Workloads that were not run are not judged.
    assert result["file_wrapper 10 MiB, daemon mode: at least 0.8 x "
                  "Apache's static file"] == ("not measured", "")


def test_a_ratio_below_its_target_is_missed_with_its_range():
    result = outcomes(rows_of(hello_runs(daemon=(150, 230, 290))))
    outcome, details = result["hello world: Tether daemon mode at least "
                              "0.8 x Tether embedded mode"]
    assert outcome == "missed"
    assert details == "hello world (13 B) c=16: 0.77 (0.50-0.97)"


def test_upload_target_names_the_mode_of_each_cell():
    runs = []
    for rnd in range(3):
        runs += [record("upload-10m", "tether-embedded", rnd, 94),
                 record("upload-10m", "modwsgi-embedded", rnd, 100),
                 record("upload-10m", "tether-daemon", rnd, 130),
                 record("upload-10m", "modwsgi-daemon", rnd, 100)]
    result = outcomes(rows_of(runs, ("upload-10m",),
                              ALL[:4]))
    outcome, details = result["1 MiB response and 10 MiB upload: at least "
                              "mod_wsgi, in both modes"]
    assert outcome == "missed"
    # The miss first, then the cells that met it.
    assert details == ("10 MiB POST body c=16, Tether/mod_wsgi emb.: 0.94; "
                       "10 MiB POST body c=16, Tether/mod_wsgi daemon: 1.30")


def test_errors_and_memory_misses_name_their_cells():
    runs = hello_runs()
    runs = [dict(r, socket_errors=3, read_errors=3)
            if r["server"] == "tether-daemon" and r["round"] == 1 else r
            for r in runs]
    runs = [dict(r, peak_rss_kib=60 * 1024)
            if r["server"] == "tether-embedded" else r for r in runs]
    result = outcomes(rows_of(runs))
    assert result["zero errors in every row (Tether's cells)"] == (
        "missed", "hello world (13 B) c=16, Tether daemon: 0 non-2xx, "
        "3 (read) socket; 1 other cell(s) met")
    assert result["peak RSS no higher than mod_wsgi's in the same mode"] \
        == ("missed", "hello world (13 B) c=16, embedded: 60.0 against "
            "50.0 MiB; 1 other cell(s) met")
    # Other servers' errors are not Tether's: the Errors section has them.
    runs = [dict(r, non2xx=5) if r["server"] == "gunicorn" else r
            for r in hello_runs()]
    assert outcomes(rows_of(runs))[
        "zero errors in every row (Tether's cells)"][0] == "met"


def test_targets_table_marks_misses():
    table = report.targets_table(rows_of(hello_runs(daemon=(100,) * 3)))
    assert ("| hello world: Tether daemon mode at least 0.8 x Tether "
            "embedded mode | **missed** | hello world (13 B) c=16: 0.33 |"
            ) in table
    assert "| zero errors in every row (Tether's cells) | met | all 2 " \
        "cells |" in table


def test_cpu_per_request_is_the_median_over_rounds_in_microseconds():
    runs = hello_runs()
    for r, cpu_s in zip([r for r in runs if r["server"] == "tether-daemon"],
                        (0.75, 1.5, 3.0)):
        r["server_cpu_s"] = cpu_s          # 1500 requests in each round
    cell = rows_of(runs)[0]["servers"]["tether-daemon"]
    assert cell["cpu_us_per_request"] == pytest.approx(1000.0)
    table = report.detail_table(rows_of(runs), ALL)
    assert "CPU us/req |" in table.splitlines()[0]
    daemon_line = [line for line in table.splitlines()
                   if "| Tether daemon |" in line][0]
    assert daemon_line.endswith("| 1000 |"), daemon_line


def test_cpu_per_request_is_missing_in_records_without_it():
    # Records of older runs have no server_cpu_s: "-", not a made-up 0.
    assert report.cpu_per_request({"requests": 10}) is None
    assert report.cpu_per_request({"server_cpu_s": 1.0, "requests": 0}) \
        is None
    cell = rows_of(hello_runs())[0]["servers"]["static"]
    assert cell["cpu_us_per_request"] is None
    assert report.fmt_cpu(None) == "-"
    assert report.fmt_cpu(12.345) == "12.3"


def test_round_trip_line_says_what_was_measured_or_why_not():
    line = report.round_trip_line({"clients": 16, "round_trips": 320000,
                                   "cpu_us": 8.44, "wall_us": 4.7})
    assert "`benchmarks/roundtrip.c`, 16 clients" in line
    assert "8.4 us of CPU, 4.7 us elapsed" in line
    assert report.round_trip_line({"skipped": "no C compiler (install gcc)"}) \
        == ("- Round trip between two processes: not measured (no C "
            "compiler (install gcc)).")
    assert "not measured" in report.round_trip_line(None)


def test_roundtrip_output_is_parsed_and_garbage_is_not():
    from benchlib import roundtrip
    assert roundtrip.parse("roundtrip: clients 4 round_trips 200000 "
                           "cpu_us 8.44 wall_us 4.70\n") == {
        "clients": 4, "round_trips": 200000, "cpu_us": 8.44,
        "wall_us": 4.70}
    assert roundtrip.parse("roundtrip: a process failed\n") is None
    assert roundtrip.parse("") is None
