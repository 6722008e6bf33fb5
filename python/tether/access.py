"""Which account Apache's children run as, and whether that account can
read everything the application needs.

Started as root, Apache switches its children to the User/Group of its
configuration; a Python installation or application under a directory that
account cannot traverse (e.g. /root, mode 0700) then fails at the first
request with an obscure import error.  tether-express checks beforehand, by
forking a child that takes on that account and calls os.access().
"""

import grp
import json
import os
import pwd
import stat
import sys
import sysconfig

WEB_USERS = ("www-data", "apache", "nobody")


class Account:
    """A user and group, by name and number."""

    def __init__(self, user, uid, group, gid):
        self.user = user
        self.uid = uid
        self.group = group
        self.gid = gid

    def __repr__(self):
        return "Account(%s:%s)" % (self.user, self.group)

    @property
    def apache_user(self):
        """The account as Apache's User directive takes it."""
        return self.user if self.user else "#%d" % self.uid

    @property
    def apache_group(self):
        return self.group if self.group else "#%d" % self.gid


def _user_entry(user):
    try:
        if isinstance(user, int) or str(user).lstrip("#").isdigit():
            return pwd.getpwuid(int(str(user).lstrip("#")))
        return pwd.getpwnam(user)
    except KeyError:
        return None


def _group_entry(group):
    try:
        if isinstance(group, int) or str(group).lstrip("#").isdigit():
            return grp.getgrgid(int(str(group).lstrip("#")))
        return grp.getgrnam(group)
    except KeyError:
        return None


def _account_of(pw_or_uid, group=None):
    """An Account from a passwd entry (or a bare uid) and a group given by
    name, #gid or None (the user's primary group, else the current one)."""
    if isinstance(pw_or_uid, int):
        uid, user, primary = pw_or_uid, None, os.getegid()
    else:
        uid, user, primary = pw_or_uid.pw_uid, pw_or_uid.pw_name, \
            pw_or_uid.pw_gid
    gr = _group_entry(primary if group is None else group)
    if gr is None and group is not None:
        raise ValueError("--group %s: no such group" % group)
    gid = gr.gr_gid if gr else primary
    return Account(user, uid, gr.gr_name if gr else None, gid)


def resolve_account(user=None, group=None, euid=None,
                    web_users=WEB_USERS):
    """The account Apache's children will run as, and a note about it.

    Started as root, that is `user` (default: the first of `web_users` that
    exists) and `group` (default: the user's primary group).  Otherwise
    Apache cannot switch accounts, so it is the current one and --user and
    --group are ignored.  Returns (Account, note or None); raises
    ValueError for unknown names and for root as the user.
    """
    if euid is None:
        euid = os.geteuid()
    if euid != 0:
        pw = _user_entry(euid)
        account = _account_of(pw if pw else euid)
        note = None
        if user is not None or group is not None:
            note = ("--user and --group only take effect when started as "
                    "root; Apache runs as %s" % account.apache_user)
        return account, note
    note = None
    if user is None:
        for name in web_users:
            if _user_entry(name) is not None:
                user = name
                note = ("started as root without --user, so Apache's "
                        "children run as %s" % name)
                break
        else:
            raise ValueError(
                "started as root, but none of the users %s exists to run "
                "Apache's children: pass --user and --group"
                % ", ".join(web_users))
    pw = _user_entry(user)
    if pw is None:
        raise ValueError("--user %s: no such user" % user)
    if pw.pw_uid == 0:
        raise ValueError("Apache refuses to run its children as root: pass "
                         "--user with an unprivileged account")
    return _account_of(pw, group), note


# --- The paths to check -----------------------------------------------------

class Need:
    """One path the account must be able to read, and what it is for."""

    def __init__(self, path, what, python=False, optional=False):
        self.path = os.path.abspath(path)
        self.what = what            # e.g. "the WSGI script"
        self.python = python        # part of the Python installation
        self.optional = optional    # fine if it does not exist (yet)

    def __repr__(self):
        return "Need(%r, %r)" % (self.path, self.what)


def python_needs():
    """The parts of the running Python installation the module embeds."""
    needs = [Need(sys.prefix, "the Python environment", python=True)]
    paths = sysconfig.get_paths()
    needs.append(Need(paths["stdlib"], "Python's standard library",
                      python=True))
    for key, what in (("platstdlib", "Python's platform library"),
                      ("purelib", "Python's site-packages"),
                      ("platlib", "Python's platform site-packages")):
        if paths.get(key) and os.path.isdir(paths[key]):
            needs.append(Need(paths[key], what, python=True))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        needs.append(Need(libdir, "libpython's directory", python=True))
        for name in (sysconfig.get_config_var("INSTSONAME"),
                     sysconfig.get_config_var("LDLIBRARY")):
            if name and os.path.isfile(os.path.join(libdir, name)):
                needs.append(Need(os.path.join(libdir, name), "libpython",
                                  python=True))
                break
    return needs


# --- The check --------------------------------------------------------------

def _check_paths(needs):
    """Run as the account: the first problem as a dict, or None."""
    for need in needs:
        parts = need.path.split(os.sep)
        for i in range(1, len(parts)):
            parent = os.sep.join(parts[:i]) or os.sep
            if not os.access(parent, os.X_OK):
                if not os.path.exists(parent) and need.optional:
                    break
                return {"path": need.path, "blocked": parent,
                        "problem": "traverse"}
        else:
            if not os.path.exists(need.path):
                if need.optional:
                    continue
                return {"path": need.path, "blocked": need.path,
                        "problem": "missing"}
            mode = os.R_OK | (os.X_OK if os.path.isdir(need.path) else 0)
            if not os.access(need.path, mode):
                return {"path": need.path, "blocked": need.path,
                        "problem": "read"}
    return None


def _check_as(account, needs):
    """Fork, become `account`, check, and report the result back."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        status = 0
        try:
            os.close(rfd)
            os.setgroups([])
            if account.user:
                os.initgroups(account.user, account.gid)
            os.setgid(account.gid)
            os.setuid(account.uid)
            result = _check_paths(needs)
            os.write(wfd, json.dumps(result).encode())
        except BaseException as e:  # report anything, then leave
            try:
                os.write(wfd, json.dumps({"error": str(e)}).encode())
            except BaseException:
                status = 1
        finally:
            os._exit(status)
    os.close(wfd)
    chunks = []
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    try:
        result = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        result = {"error": "the check produced no answer"}
    if result and "error" in result:
        raise OSError("could not check file access as %s: %s"
                      % (account.apache_user, result["error"]))
    return result


class AccessProblem:
    """The first path the account cannot read, with advice."""

    def __init__(self, account, need, blocked, problem):
        self.account = account
        self.need = need
        self.blocked = blocked
        self.problem = problem      # "traverse", "read" or "missing"

    def __str__(self):
        who = self.account.apache_user
        path = self.need.path
        if self.problem == "missing":
            return "%s %s does not exist" % (self.need.what, path)
        try:
            st = os.stat(self.blocked)
            owner = _owner(st.st_uid)
            how = "is mode %04o (owner %s)" % (stat.S_IMODE(st.st_mode), owner)
        except OSError:
            how = "is not accessible"
        if self.problem == "traverse":
            fact = "%s %s, so %s cannot reach %s %s" % (
                self.blocked, how, who, self.need.what, path)
        else:
            fact = "%s %s %s, so %s cannot read it" % (
                self.need.what, path, how, who)
        return "%s: %s" % (fact, self.advice())

    def advice(self):
        top = _top_dir(self.blocked)
        if self.need.python:
            python = _system_python(avoid=self.blocked)
            if python:
                return ("create a virtual environment outside %s with %s -m "
                        "venv /opt/app-venv, install tether-wsgi into it and "
                        "run its tether-express, or pass --user"
                        % (top, python))
            return ("install Python somewhere %s can read, or pass --user"
                    % self.account.apache_user)
        return ("let %s read it (e.g. chmod o+rx on the directories, o+r on "
                "the file), move it out of %s, or pass --user/--group naming "
                "an account that can read it"
                % (self.account.apache_user, top))


def _owner(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "#%d" % uid


def _top_dir(path):
    parts = [p for p in path.split(os.sep) if p]
    return os.sep + parts[0] if parts else os.sep


def _system_python(avoid):
    """A python3 of the system outside `avoid`, to suggest for a venv."""
    avoid = avoid.rstrip(os.sep) + os.sep
    base = os.path.join(sys.base_prefix, "bin", "python3")
    for candidate in (base, "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.isfile(candidate) and not (
                os.path.realpath(candidate) + os.sep).startswith(avoid) \
                and not (candidate + os.sep).startswith(avoid):
            return candidate
    return None


def find_unreadable(account, needs, euid=None):
    """Check that `account` can traverse to and read every Need.

    Returns the first AccessProblem, or None.  As root the check runs in a
    forked child that switched to the account; otherwise Apache keeps the
    current account, so the check runs in this process.
    """
    if not needs:
        return None
    if euid is None:
        euid = os.geteuid()
    if euid == 0 and account.uid != 0:
        result = _check_as(account, needs)
    else:
        result = _check_paths(needs)
    if result is None:
        return None
    need = next(n for n in needs if n.path == result["path"])
    return AccessProblem(account, need, result["blocked"], result["problem"])
