"""tether-express's --metrics-url, --server-status and --log-format as they
render into httpd.conf.  No Apache is started."""

import io
import json
import re

import pytest

from tether import cli, express, logpipe
from test_render import conf_of, layout, setup_for  # noqa: F401


def loaded(conf):
    return re.findall(r"^LoadModule (\w+) ", conf, re.MULTILINE)


def test_observability_options_default_off():
    args = cli.make_parser().parse_args(["start-server"])
    assert args.metrics_url is None
    assert args.server_status is False
    assert args.log_format == "text"


def test_metrics_url_renders_the_tether_directive(layout):  # noqa: F811
    setup = setup_for(layout, str(layout["script"]), "--metrics-url",
                      "/metrics/")
    conf = conf_of(setup)
    assert 'TetherMetricsURL "/metrics"' in conf
    assert '<Location "/metrics">' in conf
    assert dict(setup.summary)["Metrics URL"] == "/metrics"
    # Neither the status page nor JSON logs unless asked for.
    assert "server-status" not in conf
    assert "ErrorLogFormat" not in conf


@pytest.mark.parametrize("url", ["metrics", "/", 'a"b'])
def test_metrics_url_must_be_a_path_below_root(layout, url):  # noqa: F811
    with pytest.raises(express.SetupError, match="--metrics-url"):
        setup_for(layout, str(layout["script"]), "--metrics-url", url)


def test_server_status_loads_mod_status_and_maps_the_page(
        layout):  # noqa: F811
    (layout["modules"] / "mod_status.so").write_bytes(b"")
    setup = setup_for(layout, str(layout["script"]), "--server-status")
    conf = conf_of(setup)
    assert "status_module" in loaded(conf)
    assert "SetHandler server-status" in conf
    assert "ExtendedStatus On" in conf


def _format_string(conf, directive):
    """The format of `directive` as Apache unquotes it."""
    line = next(l for l in conf.splitlines() if l.startswith(directive))
    quoted = line[len(directive):].strip()
    end = quoted.rindex('"')
    return quoted[1:end].replace('\\"', '"')


def _fill(fmt):
    """Replaces Apache's % escapes by plausible values."""
    fmt = re.sub(r"%\{[^}]*\}[a-zA-Z]", "x", fmt)
    fmt = re.sub(r"%>s|%[-]?[A-Za-z]", "1", fmt)
    return fmt


def test_log_format_json_pipes_both_logs_through_the_log_pipe(
        layout):  # noqa: F811
    setup = setup_for(layout, str(layout["script"]), "--log-format", "json",
                      "--access-log")
    conf = conf_of(setup)
    assert re.search(r'^ErrorLog "\|.* -m tether\.logpipe error .*error_log"$',
                     conf, re.MULTILINE)
    assert re.search(r'^CustomLog "\|.* -m tether\.logpipe access '
                     r'.*access_log" tether_json$', conf, re.MULTILINE)
    fields = _format_string(conf, "ErrorLogFormat").split("|")
    assert len(fields) == len(logpipe.ERROR_FIELDS)
    assert fields[-1] == "%M"
    access = json.loads(_fill(_format_string(conf, "LogFormat")))
    assert {"time", "status", "path", "duration_us", "request_id"} <= set(
        access)


def test_log_format_json_to_terminal_pipes_to_standard_streams(
        layout):  # noqa: F811
    conf = conf_of(setup_for(layout, str(layout["script"]), "--log-format",
                             "json", "--log-to-terminal", "--access-log"))
    assert re.search(r'^ErrorLog "\|.* -m tether\.logpipe error -"$', conf,
                     re.MULTILINE)


def test_logpipe_error_lines_become_json_whatever_the_message():
    line = ('2026-01-02 03:04:05.123456|tether|error|42|7|127.0.0.1:5|id1|'
            'TETHER0302:   File "/x.py", line 1 | with a bar\\ and tab\t')
    record = json.loads(logpipe.error_record(line))
    assert record["pid"] == 42 and record["level"] == "error"
    assert record["message"].startswith('TETHER0302:   File "/x.py"')
    assert record["message"].endswith("| with a bar\\ and tab\t")
    assert json.loads(logpipe.error_record("no format here")) == {
        "message": "no format here"}


def test_logpipe_access_lines_turn_hex_escapes_into_json():
    line = r'{"path":"/a\x01b","agent":"c\\x41d\"q"}'
    record = json.loads(logpipe.access_record(line))
    assert record == {"path": "/a\x01b", "agent": 'c\\x41d"q'}
    assert json.loads(logpipe.access_record("not json")) == {
        "unparsed": "not json"}


def test_logpipe_main_appends_json_lines(tmp_path, monkeypatch):
    out = tmp_path / "error_log"
    data = b"t|core|notice|1|2|||AH00094: Command line: 'x'\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert logpipe.main(["error", str(out)]) == 0
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["message"] == "AH00094: Command line: 'x'"


def test_log_format_text_keeps_common_log_format(layout):  # noqa: F811
    conf = conf_of(setup_for(layout, str(layout["script"]), "--access-log"))
    assert re.search(r'^CustomLog ".*access_log" common$', conf,
                     re.MULTILINE)
    assert "ErrorLogFormat" not in conf
