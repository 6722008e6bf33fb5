"""Access and auth hooks for tests/integration/test_auth_hooks.py.

What each function answers depends on the request URI or the user name, so
that one script serves every case.
"""

import hashlib


def _in_main_interpreter():
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        current, main = mod.get_current(), mod.get_main()
        if isinstance(current, tuple):  # 3.13+: (id, whence)
            current, main = current[0], main[0]
        return int(current) == int(main)
    return None


def allow_access(environ, host):
    uri = environ["REQUEST_URI"]
    environ["wsgi.errors"].write("allow_access %s from %s\n" % (uri, host))
    if uri.startswith("/acc/deny"):
        return False
    if uri.startswith("/acc/none"):
        return None
    if uri.startswith("/acc/boom"):
        raise RuntimeError("allow_access blew up on purpose")
    if uri.startswith("/acc/bad"):
        return 42
    if uri.startswith("/acc/host"):
        return host == "127.0.0.1"
    if uri.startswith("/accgroup"):
        # application-group=authgroup: a sub-interpreter, not the main one
        return _in_main_interpreter() is False
    if uri.startswith("/acc/main"):
        return _in_main_interpreter() is True
    if uri.startswith("/acc/setenv"):
        # SetEnv is not applied before the access phase (mod_wsgi's rule)
        return "TETHER_SECRET" not in environ
    return True


def check_password(environ, user, password):
    if "wsgi.errors" not in environ or "HTTP_AUTHORIZATION" in environ:
        return False
    if user == "spy":
        return password == "secret"
    if user == "alias":
        # granted under another (canonical) user name
        return "canonical" if password == "pw" else False
    if user == "boom":
        raise ValueError("check_password blew up on purpose")
    if user == "weird":
        return 3.5
    if user == "grpboom":
        return True
    return None


def get_realm_hash(environ, user, realm):
    if user == "spy":
        data = ("%s:%s:%s" % (user, realm, "secret")).encode("utf-8")
        return hashlib.md5(data).hexdigest()
    if user == "boom":
        raise ValueError("get_realm_hash blew up on purpose")
    return None


def groups_for_user(environ, user):
    if user == "spy":
        return ["readers", "secret-agents"]
    if user == "canonical":
        return ("staff",)
    if user == "grpboom":
        raise KeyError("groups_for_user blew up on purpose")
    return []
