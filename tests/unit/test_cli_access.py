"""The account Apache's children run as, and the check that it can read
what the application needs.  The checks that switch accounts need root."""

import os
import pwd
import shutil
import tempfile

import pytest

from tether import access
from tether.access import Account, Need, find_unreadable, resolve_account

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="switching accounts needs root")


def nobody():
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this system has no user nobody")
    return access._account_of(pw)


@pytest.fixture
def public_tmp():
    """A directory under /tmp every account can traverse (pytest's tmp_path
    is mode 0700 when running as root)."""
    path = tempfile.mkdtemp(prefix="tether-access-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


# --- choosing the account ----------------------------------------------------

def test_access_not_root_runs_as_the_current_account():
    me = os.geteuid() or 1
    account, note = resolve_account(euid=me)
    assert account.uid == me and note is None
    account, note = resolve_account(user="www-data", euid=me)
    assert account.uid == me
    assert "only take effect when started as root" in note


def test_access_root_without_user_picks_the_first_web_user():
    pw = pwd.getpwuid(os.geteuid() if os.geteuid() else 65534)
    account, note = resolve_account(
        euid=0, web_users=("no-such-user-tether", pw.pw_name, "root"))
    assert account.user == pw.pw_name and account.uid == pw.pw_uid
    assert account.gid == pw.pw_gid
    assert note == ("started as root without --user, so Apache's children "
                    "run as %s" % pw.pw_name)


def test_access_root_with_no_web_user_asks_for_user():
    with pytest.raises(ValueError, match="pass --user and --group"):
        resolve_account(euid=0, web_users=("no-such-user-tether",))


def test_access_root_refuses_root_and_unknown_names():
    with pytest.raises(ValueError, match="refuses to run its children as "
                                         "root"):
        resolve_account(user="root", euid=0)
    with pytest.raises(ValueError, match="no such user"):
        resolve_account(user="no-such-user-tether", euid=0)
    user = pwd.getpwuid(65534).pw_name if _has_uid(65534) else None
    if user:
        with pytest.raises(ValueError, match="no such group"):
            resolve_account(user=user, group="no-such-group-tether", euid=0)


def _has_uid(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def test_access_root_with_user_and_numeric_group():
    n = nobody()
    account, note = resolve_account(user="nobody", group="#0", euid=0)
    assert (account.uid, account.gid, note) == (n.uid, 0, None)
    assert account.apache_user == "nobody"


def test_access_account_without_names_uses_numbers():
    account = Account(None, 4321, None, 8765)
    assert (account.apache_user, account.apache_group) == ("#4321", "#8765")


# --- the check, in this process ----------------------------------------------

def test_access_check_passes_for_readable_paths(tmp_path):
    (tmp_path / "app.wsgi").write_text("")
    account, _ = resolve_account(euid=os.geteuid() or 1)
    needs = [Need(str(tmp_path), "the app dir"),
             Need(str(tmp_path / "app.wsgi"), "the WSGI script"),
             Need(str(tmp_path / "later"), "an alias target", optional=True)]
    assert find_unreadable(account, needs, euid=os.geteuid() or 1) is None


def test_access_check_reports_a_missing_required_path(tmp_path):
    account, _ = resolve_account(euid=os.geteuid() or 1)
    problem = find_unreadable(
        account, [Need(str(tmp_path / "gone.wsgi"), "the WSGI script")],
        euid=os.geteuid() or 1)
    assert problem.problem == "missing"
    assert str(problem) == "the WSGI script %s does not exist" % (
        tmp_path / "gone.wsgi")


def test_access_python_needs_cover_prefix_stdlib_and_libpython():
    import sys
    import sysconfig
    needs = access.python_needs()
    paths = {n.path for n in needs}
    assert os.path.abspath(sys.prefix) in paths
    assert os.path.abspath(sysconfig.get_paths()["stdlib"]) in paths
    assert all(n.python for n in needs)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        assert os.path.abspath(libdir) in paths


# --- the check as another account (root only) --------------------------------

@needs_root
def test_access_check_finds_a_private_parent_directory(public_tmp):
    private = os.path.join(public_tmp, "home")
    app_dir = os.path.join(private, "site")
    os.makedirs(app_dir)
    os.chmod(private, 0o700)
    script = os.path.join(app_dir, "app.wsgi")
    open(script, "w").close()
    problem = find_unreadable(nobody(), [
        Need(public_tmp, "a readable directory"),
        Need(script, "the WSGI script")])
    assert problem is not None
    assert (problem.problem, problem.blocked, problem.need.path) == (
        "traverse", private, script)
    message = str(problem)
    assert message.startswith("%s is mode 0700 (owner root), so nobody cannot "
                              "reach the WSGI script %s: " % (private, script))
    assert "pass --user" in message


@needs_root
def test_access_check_finds_an_unreadable_file(public_tmp):
    script = os.path.join(public_tmp, "app.wsgi")
    open(script, "w").close()
    os.chmod(script, 0o600)
    problem = find_unreadable(nobody(), [Need(script, "the WSGI script")])
    assert (problem.problem, problem.blocked) == ("read", script)
    assert str(problem).startswith(
        "the WSGI script %s is mode 0600 (owner root), so nobody cannot read "
        "it: let nobody read it" % script)
    os.chmod(script, 0o644)
    assert find_unreadable(nobody(), [Need(script, "the WSGI script")]) is None


@needs_root
def test_access_check_needs_search_permission_on_directories(public_tmp):
    docs = os.path.join(public_tmp, "docs")
    os.mkdir(docs)
    os.chmod(docs, 0o744)        # readable, not traversable
    problem = find_unreadable(nobody(), [Need(docs, "the document root")])
    assert (problem.problem, problem.blocked) == ("read", docs)


@needs_root
def test_access_check_python_paths_suggest_a_venv_elsewhere(public_tmp):
    private = os.path.join(public_tmp, "root-like")
    prefix = os.path.join(private, ".pyenv", "versions", "3.11")
    os.makedirs(prefix)
    os.chmod(private, 0o700)
    problem = find_unreadable(nobody(), [
        Need(prefix, "the Python environment", python=True)])
    message = str(problem)
    assert "so nobody cannot reach the Python environment %s" % prefix \
        in message
    assert "-m venv /opt/app-venv" in message
    assert "or pass --user" in message


@needs_root
def test_access_check_leaves_optional_missing_paths(public_tmp):
    assert find_unreadable(nobody(), [
        Need(os.path.join(public_tmp, "not", "yet"), "an alias target",
             optional=True)]) is None
