"""What Python's locale and encodings are where the application runs, and
whether a non-ASCII file name can be created and listed."""

import json
import locale
import os
import sys
import tempfile

NAME = "h\u00e9llo.txt"


def file_name_round_trip():
    try:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, NAME), "w"):
                pass
            return {"listed": os.listdir(d),
                    "bytes": os.listdir(os.fsencode(d))[0].hex()}
    except (OSError, UnicodeError) as exc:
        return {"error": repr(exc)}


def application(environ, start_response):
    report = {
        "pid": os.getpid(),
        "process_group": environ.get("mod_wsgi.process_group"),
        "preferred": locale.getpreferredencoding(False),
        "filesystem": sys.getfilesystemencoding(),
        "lc_ctype": locale.setlocale(locale.LC_CTYPE),
        "utf8_mode": sys.flags.utf8_mode,
        "LANG": os.environ.get("LANG"),
        "LC_ALL": os.environ.get("LC_ALL"),
        "file": file_name_round_trip(),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(report).encode()]
