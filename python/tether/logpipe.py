"""The piped logger behind `tether-express --log-format json`.

Apache writes its error log lines in a plain format whose fields are
separated by "|" (ErrorLogFormat in blocks.conf.in, the message last) and
its access log lines as JSON (LogFormat tether_json); Apache does not
escape error messages, and spells control characters in access log fields
as \\xhh, which JSON does not know.  This filter, run by Apache as
`ErrorLog "|python -m tether.logpipe error FILE"` (and `access`), turns
each line into one valid JSON object and appends it to FILE ("-": its
standard error for error lines, standard output for access lines).
"""

import json
import re
import sys

ERROR_FIELDS = ("time", "module", "level", "pid", "tid", "client",
                "request_id", "message")
# A \xhh that is not itself an escaped backslash followed by "xhh".
_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9a-fA-F]{2})")


def error_record(line):
    """The JSON object of one error log line (a line Apache wrote without
    the format, e.g. from a module's stderr, becomes its message)."""
    parts = line.split("|", len(ERROR_FIELDS) - 1)
    if len(parts) != len(ERROR_FIELDS):
        return json.dumps({"message": line}, ensure_ascii=False)
    record = dict(zip(ERROR_FIELDS, parts))
    for key in ("pid", "tid"):
        if record[key].isdigit():
            record[key] = int(record[key])
    return json.dumps(record, ensure_ascii=False)


def access_record(line):
    """One access log line as valid JSON: Apache's \\xhh made \\u00hh."""
    fixed = _HEX_ESCAPE.sub(r"\1\\u00\2", line)
    try:
        json.loads(fixed)
    except ValueError:
        return json.dumps({"unparsed": line}, ensure_ascii=False)
    return fixed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("error", "access"):
        sys.stderr.write("usage: python -m tether.logpipe error|access "
                         "FILE|-\n")
        return 2
    kind, path = argv
    convert = error_record if kind == "error" else access_record
    if path == "-":
        out = sys.stderr if kind == "error" else sys.stdout
    else:
        out = open(path, "a", buffering=1, encoding="utf-8",
                   errors="replace")
    try:
        for raw in sys.stdin.buffer:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line:
                out.write(convert(line) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if out not in (sys.stderr, sys.stdout):
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
