"""Reports which interpreter and module state serve a request."""

import json
import os
import sys
import uuid
import warnings

# A fresh token each time this module is executed: two application groups
# executing the same file get two tokens, one group always the same one.
TOKEN = uuid.uuid4().hex
counter = 0


def _interpreter_ids():
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        current, main = mod.get_current(), mod.get_main()
        if isinstance(current, tuple):  # 3.13+: (id, whence)
            current, main = current[0], main[0]
        return int(current), int(main)
    return None, None


def _deprecation_is_error():
    try:
        warnings.warn("probe", DeprecationWarning)
    except DeprecationWarning:
        return True
    return False


def application(environ, start_response):
    global counter
    counter += 1
    current, main = _interpreter_ids()
    body = json.dumps({
        "pid": os.getpid(),
        "token": TOKEN,
        "counter": counter,
        "group": environ.get("mod_wsgi.application_group"),
        "process_group": environ.get("mod_wsgi.process_group"),
        "tether_group": environ.get("tether.application_group"),
        "interpreter": current,
        "main_interpreter": main,
        "argv": sys.argv,
        "optimize": sys.flags.optimize,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "hash_randomization": sys.flags.hash_randomization,
        "hash_abc": hash("abc"),
        "prefix": sys.prefix,
        "sys_path": sys.path,
        "env_pythonpath": os.environ.get("PYTHONPATH"),
        "egg_cache": os.environ.get("PYTHON_EGG_CACHE"),
        "switch_interval": sys.getswitchinterval(),
        "warnoptions": list(sys.warnoptions),
        "deprecation_is_error": _deprecation_is_error(),
        "callable": environ.get("mod_wsgi.callable_object"),
        "method": environ.get("REQUEST_METHOD"),
        "authorization": environ.get("HTTP_AUTHORIZATION"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return [body]


def other(environ, start_response):
    body = b"other callable"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
