"""Shared hosting: apache-conf/shared-hosting.conf brought up as root, with
two real system users made for the test, proves that the two customers'
applications cannot reach each other.

The example is used as committed, with its `Define SH_...` lines given this
test's values (ports, paths, user names).  The test adds a daemon group
defined outside the virtual hosts (visible everywhere, as an
administrator's own group would be), to show that WSGIRestrictProcess keeps
the customers' .htaccess files away from it, and a third site whose group
has script-group=.

Layout (under the server's directory, 0755):
    sockets/                    WSGISocketPrefix (root, 0755)
    script-group/               a.wsgi, b.wsgi: of A's and of B's group
    <A's user name>/            A's home: A, Apache's group, 0750
        venv/                   A's Python (python-home=)
        public/                 the document root, *.wsgi are applications
            app.wsgi            tests/apps/shared_hosting.wsgi, owned by A
            foreign.wsgi        the same, owned by B (script-user=: 403)
            <case>/.htaccess    WSGIProcessGroup tricks, each beside an app
    <B's user name>/            the same for B

The configuration tests at the end (a daemon group that would run as root is
an `httpd -t` error) need no root.
"""

import contextlib
import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import urllib.parse

import pytest

import harness

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "apache-conf", "shared-hosting.conf")
APP = os.path.join(harness.APPS_SOURCE, "shared_hosting.wsgi")

GROUP_A = "customer-a"
GROUP_B = "customer-b"
# A group defined outside the virtual hosts: any virtual host may select it
# unless WSGIRestrictProcess says otherwise.
GROUP_GLOBAL = "tsh-global"
GROUP_SCRIPT_GROUP = "tsh-script-group"
EXTRA_CONFIG = """
# Added by test_shared_hosting.py: a group every virtual host can see.
WSGIDaemonProcess %s processes=1 threads=1 display-name=%%{GROUP}

# And a site whose group runs only scripts of one Unix group.
<VirtualHost *:@PORT@>
    ServerName c.example.test
    DocumentRoot @ROOT@/script-group
    WSGIDaemonProcess %s processes=1 threads=1 display-name=%%{GROUP} \\
        script-group=@SCRIPT_GROUP@
    WSGIProcessGroup %s
    <Directory @ROOT@/script-group>
        Options ExecCGI
        AddHandler wsgi-script .wsgi
        Require all granted
    </Directory>
</VirtualHost>
""" % (GROUP_GLOBAL, GROUP_SCRIPT_GROUP, GROUP_SCRIPT_GROUP)

# .htaccess files in A's document root that try to leave A's group.
HTACCESS = {
    "pick-b": "WSGIProcessGroup %s\n" % GROUP_B,
    "pick-b-env": "SetEnv SH_PICK %s\nWSGIProcessGroup %%{ENV:SH_PICK}\n"
                  % GROUP_B,
    "pick-global": "WSGIProcessGroup %s\n" % GROUP_GLOBAL,
    "pick-global-env": "SetEnv SH_PICK %s\nWSGIProcessGroup %%{ENV:SH_PICK}\n"
                       % GROUP_GLOBAL,
    "embedded": "WSGIProcessGroup %{GLOBAL}\n",
    "pick-own": "WSGIProcessGroup %s\n" % GROUP_A,
}

READY_RE = (r"TETHER0600: daemon process \d+ of group '%s' ready \(pid "
            r"(\d+), uid (\d+), \d+ threads, socket (\S+)\)")


def render_example(values):
    """shared-hosting.conf with each `Define SH_...` line set to values[name];
    every Define of the file must get a value, and every value a Define."""
    with open(EXAMPLE) as f:
        text = f.read()
    seen = set()

    def define(match):
        seen.add(match.group(1))
        return "Define %s %s" % (match.group(1), values[match.group(1)])

    text = re.sub(r"^Define (SH_\w+) .*$", define, text, flags=re.M)
    assert seen == set(values), "Define lines of %s: %s" % (EXAMPLE,
                                                             sorted(seen))
    return text


class SharedHostingServer(harness.ApacheServer):
    """A harness server whose config may say @PORT@ (its Listen port)."""

    def expand(self, text):
        return super().expand(text).replace("@PORT@", str(self.port))


# --- users -------------------------------------------------------------------

def _remove_user(name):
    subprocess.run(["userdel", name], check=False, capture_output=True)
    with contextlib.suppress(KeyError):
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def root_only():
    if not harness.running_as_root():
        pytest.skip("shared hosting needs root: only root can start daemons "
                    "as other users and make the system users of the test")
    for tool in ("useradd", "userdel"):
        if not shutil.which(tool):
            pytest.skip("no %s to make the customers' system users" % tool)


@pytest.fixture(scope="module")
def customers(root_only):
    """Two new system users (and their groups), removed afterwards whatever
    happens: {"a": pwd entry, "b": pwd entry}."""
    tag = secrets.token_hex(3)
    made = []
    try:
        users = {}
        for key in ("a", "b"):
            name = "tether-sh%s-%s" % (tag, key)
            made.append(name)
            subprocess.run(["useradd", "--system", "--user-group",
                            "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
            users[key] = pwd.getpwnam(name)
        yield users
    finally:
        for name in made:
            _remove_user(name)


# --- the server --------------------------------------------------------------

def _own(path, uid, gid, mode):
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _make_customer(base, user, apache_gid):
    """The home of one customer: venv, public/ with app.wsgi and the
    .htaccess cases, all owned by the customer, group Apache's."""
    home = os.path.join(base, user.pw_name)
    public = os.path.join(home, "public")
    os.makedirs(public)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                    os.path.join(home, "venv")], check=True,
                   capture_output=True)
    shutil.copy(APP, os.path.join(public, "app.wsgi"))
    for case, text in HTACCESS.items():
        os.mkdir(os.path.join(public, case))
        shutil.copy(APP, os.path.join(public, case, "app.wsgi"))
        with open(os.path.join(public, case, ".htaccess"), "w") as f:
            f.write(text)
    for dirpath, dirnames, filenames in os.walk(public):
        _own(dirpath, user.pw_uid, apache_gid, 0o750)
        for name in filenames:
            _own(os.path.join(dirpath, name), user.pw_uid, apache_gid, 0o640)
    _own(home, user.pw_uid, apache_gid, 0o750)
    return home


@pytest.fixture(scope="module")
def site(httpd_env, tether_only, customers):
    """The example running, with each group's daemon ready; yields a
    namespace with the server, users, homes, sockets and daemon pids."""
    srv = SharedHostingServer(
        httpd_env.install, httpd_env.module, name="shared-hosting",
        log_level=os.environ.get("TETHER_TEST_LOGLEVEL", "info"))
    try:
        apache_gid = srv.gid
        sockets = os.path.join(srv.root, "sockets")
        os.mkdir(sockets, 0o755)
        homes = {key: _make_customer(srv.root, user, apache_gid)
                 for key, user in customers.items()}
        # A script in A's document root that B owns.
        foreign = os.path.join(homes["a"], "public", "foreign.wsgi")
        shutil.copy(APP, foreign)
        _own(foreign, customers["b"].pw_uid, apache_gid, 0o644)

        # Scripts of A's and of B's group for the script-group= site.
        script_group = os.path.join(srv.root, "script-group")
        os.mkdir(script_group, 0o755)
        for key in ("a", "b"):
            path = os.path.join(script_group, "%s.wsgi" % key)
            shutil.copy(APP, path)
            _own(path, 0, customers[key].pw_gid, 0o644)

        srv.config = render_example({
            "SH_PORT": "@PORT@",
            "SH_SOCKET_PREFIX": os.path.join(sockets, "wsgi"),
            "SH_A_HOST": "a.example.test",
            "SH_A_USER": customers["a"].pw_name,
            "SH_A_HOME": homes["a"],
            "SH_B_HOST": "b.example.test",
            "SH_B_USER": customers["b"].pw_name,
            "SH_B_HOME": homes["b"],
        }) + EXTRA_CONFIG.replace(
            "@SCRIPT_GROUP@", grp.getgrgid(customers["a"].pw_gid).gr_name)
    except BaseException:
        srv.cleanup()
        raise
    with srv:
        ready = {}
        for group in (GROUP_A, GROUP_B, GROUP_GLOBAL, GROUP_SCRIPT_GROUP):
            m = srv.wait_for_log(READY_RE % re.escape(group))
            ready[group] = {"pid": int(m.group(1)), "uid": int(m.group(2)),
                            "socket": m.group(3)}
        yield Site(srv, customers, homes, ready, foreign)


class Site:
    def __init__(self, srv, users, homes, ready, foreign):
        self.srv = srv
        self.users = users
        self.homes = homes
        self.ready = ready
        self.foreign = foreign

    def get(self, customer, path):
        """GET path on the virtual host of customer "a" or "b"."""
        return self.srv.get(path, headers={
            "Host": "%s.example.test" % customer})

    def app(self, customer, path="/app.wsgi", **query):
        """The JSON report of a customer's app (asserting a 200)."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        response = self.get(customer, path)
        assert response.status == 200, response
        return response.json()


def _proc_ids(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(v) for v in line.split()[1:]]
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


# --- each customer is on its own ---------------------------------------------

def test_shared_hosting_each_app_runs_as_its_customer(site):
    for key, group in (("a", GROUP_A), ("b", GROUP_B)):
        user = site.users[key]
        report = site.app(key)
        assert report["group"] == group
        assert report["uid"] == report["euid"] == user.pw_uid
        assert report["gid"] == user.pw_gid
        # initgroups(): the customer's own groups only, not Apache's.
        assert report["groups"] == [user.pw_gid]
        assert report["cwd"] == site.homes[key]        # home=
        assert report["umask"] == "0077"               # umask=
        assert report["pid"] == site.ready[group]["pid"]
        # Real, effective, saved and filesystem ids: all the customer's.
        assert _proc_ids(report["pid"], "Uid") == [user.pw_uid] * 4
        assert _proc_ids(report["pid"], "Gid") == [user.pw_gid] * 4
    assert site.app("a")["uid"] != site.app("b")["uid"]


def test_shared_hosting_daemon_cannot_become_root_again(site):
    """The check every daemon makes after switching user (setuid(0) must
    fail) holds from inside the application too."""
    for key in ("a", "b"):
        report = site.app(key, setuid0="1")
        assert report["setuid0"] == {"ok": False, "errno": "EPERM",
                                     "error": report["setuid0"]["error"]}
        assert report["uid"] == site.users[key].pw_uid


def test_shared_hosting_sockets_belong_to_apache_only(site):
    for group in (GROUP_A, GROUP_B):
        st = os.stat(site.ready[group]["socket"])
        assert stat.S_ISSOCK(st.st_mode)
        assert st.st_uid == site.srv.uid
        assert stat.S_IMODE(st.st_mode) == 0o600


def test_shared_hosting_app_cannot_connect_to_other_customers_socket(site):
    socket_b = site.ready[GROUP_B]["socket"]
    report = site.app("a", connect=socket_b)
    assert report["connect"]["ok"] is False
    assert report["connect"]["errno"] == "EACCES", report
    # Not to its own group's socket either: only Apache's children talk to
    # the daemons.
    report = site.app("a", connect=site.ready[GROUP_A]["socket"])
    assert report["connect"]["errno"] == "EACCES", report


def test_shared_hosting_daemon_refuses_other_users_by_peer_credentials(site):
    """Were B's socket open to all (a mistake made here on purpose), B's
    daemon would still hang up on A's app without answering."""
    socket_b = site.ready[GROUP_B]["socket"]
    mark = site.srv.log_mark()
    os.chmod(socket_b, 0o666)
    try:
        report = site.app("a", connect=socket_b)
    finally:
        os.chmod(socket_b, 0o600)
    assert report["connect"]["connected"] is True, report
    assert report["connect"]["received"] == 0, report
    site.srv.wait_for_log(
        r"TETHER0603: daemon group '%s': refused a connection from uid %d"
        % (GROUP_B, site.users["a"].pw_uid), since=mark)
    # B's daemon is still there and still serves B.
    assert site.app("b")["pid"] == site.ready[GROUP_B]["pid"]


def test_shared_hosting_app_cannot_read_other_customers_files(site):
    b_home = site.homes["b"]
    for path in (b_home, os.path.join(b_home, "public"),
                 os.path.join(b_home, "public", "app.wsgi"),
                 os.path.join(b_home, "venv", "pyvenv.cfg")):
        report = site.app("a", open=path)
        assert report["open"]["ok"] is False, (path, report)
        assert report["open"]["errno"] == "EACCES", (path, report)
    # What A's app may read, it can: the check above is not a broken app.
    report = site.app("a", open=os.path.join(site.homes["a"], "public",
                                             "app.wsgi"))
    assert report["open"]["ok"] is True, report


def test_shared_hosting_other_vhost_does_not_serve_other_customers_files(site):
    """A's virtual host maps no URL into B's home."""
    b_home = os.path.basename(site.homes["b"])
    for path in ("/../%s/public/app.wsgi" % b_home,
                 "/%2e%2e/" + b_home + "/public/app.wsgi"):
        response = site.get("a", path)
        assert response.status in (400, 403, 404), (path, response)


# --- .htaccess cannot leave the customer's group -----------------------------

@pytest.mark.parametrize("case", ["pick-b", "pick-b-env"])
def test_shared_hosting_htaccess_cannot_select_other_customers_group(site,
                                                                     case):
    """B's group is defined in B's virtual host: A's virtual host cannot
    see it (and WSGIRestrictProcess would refuse it too)."""
    mark = site.srv.log_mark()
    response = site.get("a", "/%s/app.wsgi" % case)
    assert response.status == 500, response
    site.srv.wait_for_log(
        r"TETHER0105: No WSGIDaemonProcess group called '%s' is configured "
        r"for this virtual host" % GROUP_B, since=mark)
    assert str(site.users["b"].pw_uid).encode() not in response.body


@pytest.mark.parametrize("case", ["pick-global", "pick-global-env"])
def test_shared_hosting_htaccess_cannot_leave_restricted_groups(site, case):
    """A group every virtual host sees is still refused in A's directory,
    which WSGIRestrictProcess limits to A's group, whether .htaccess names
    it directly or through %{ENV:var}."""
    mark = site.srv.log_mark()
    response = site.get("a", "/%s/app.wsgi" % case)
    assert response.status == 403, response
    site.srv.wait_for_log(
        r"TETHER0108: Daemon group '%s' is not allowed here by "
        r"WSGIRestrictProcess" % GROUP_GLOBAL, since=mark)


def test_shared_hosting_htaccess_may_name_its_own_group(site):
    report = site.app("a", "/pick-own/app.wsgi")
    assert report["group"] == GROUP_A
    assert report["uid"] == site.users["a"].pw_uid


def test_shared_hosting_embedded_mode_is_refused(site):
    """WSGIRestrictEmbedded On: .htaccess cannot send a request into
    Apache's own children (which run as Apache's user)."""
    mark = site.srv.log_mark()
    response = site.get("a", "/embedded/app.wsgi")
    assert response.status == 500, response
    site.srv.wait_for_log(r"TETHER0106: Embedded mode is disabled by "
                          r"WSGIRestrictEmbedded On", since=mark)


# --- script-user= ------------------------------------------------------------

def test_shared_hosting_script_of_another_owner_is_refused(site):
    mark = site.srv.log_mark()
    response = site.get("a", "/foreign.wsgi")
    assert response.status == 403, response
    a, b = site.users["a"], site.users["b"]
    site.srv.wait_for_log(
        r"TETHER0150: WSGI script %s is owned by user '%s' \(uid %d\); "
        r"daemon group '%s' only runs scripts owned by user '%s' \(uid %d, "
        r"script-user=\)" % (re.escape(site.foreign), b.pw_name, b.pw_uid,
                             GROUP_A, a.pw_name, a.pw_uid), since=mark)
    # Refused in Apache: the daemon never saw the request.
    assert "foreign.wsgi" not in "".join(
        line for line in site.srv.error_log(since=mark).splitlines()
        if "TETHER03" in line)


def test_shared_hosting_script_of_another_group_is_refused(site):
    a_group = grp.getgrgid(site.users["a"].pw_gid).gr_name
    b_group = grp.getgrgid(site.users["b"].pw_gid).gr_name
    response = site.get("c", "/a.wsgi")
    assert response.status == 200, response
    assert response.json()["group"] == GROUP_SCRIPT_GROUP

    mark = site.srv.log_mark()
    response = site.get("c", "/b.wsgi")
    assert response.status == 403, response
    site.srv.wait_for_log(
        r"TETHER0150: WSGI script %s is owned by group '%s' \(gid %d\); "
        r"daemon group '%s' only runs scripts owned by group '%s' \(gid %d, "
        r"script-group=\)" % (
            re.escape(os.path.join(site.srv.root, "script-group", "b.wsgi")),
            b_group, site.users["b"].pw_gid, GROUP_SCRIPT_GROUP, a_group,
            site.users["a"].pw_gid), since=mark)


# --- a daemon that would run as root is a configuration error ----------------

@pytest.fixture
def config_server(httpd_env, tether_only):
    srv = httpd_env.server(name="shared-hosting-configtest")
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.mark.parametrize("config, message", [
    ("WSGIDaemonProcess tsh-rooted user=root threads=1",
     r"WSGIDaemonProcess tsh-rooted: user 'root' is uid 0: daemon processes "
     r"never run as root"),
    ("WSGIDaemonProcess tsh-rooted user=#0 threads=1",
     r"WSGIDaemonProcess tsh-rooted: user '#0' is uid 0"),
    # No user=: the daemons would run as Apache's User, here root.  A stock
    # httpd refuses `User root` itself (mod_unixd, unless it was built with
    # BIG_SECURITY_HOLE); Tether refuses the group in any case.
    ("User root\nWSGIDaemonProcess tsh-rooted threads=1",
     r"WSGIDaemonProcess tsh-rooted would run as root \(Apache's User is "
     r"root\)|Apache has not been designed to serve pages while.*running "
     r"as root"),
    ("User #0\nWSGIDaemonProcess tsh-rooted threads=1",
     r"WSGIDaemonProcess tsh-rooted would run as root|Apache has not been "
     r"designed to serve pages while.*running as root"),
])
def test_shared_hosting_daemon_as_root_is_a_configtest_error(config_server,
                                                             config, message):
    status, output = config_server.configtest(config)
    assert status != 0, output
    assert re.search(message, output, re.S), output
    assert "Syntax OK" not in output


def test_shared_hosting_example_passes_configtest(config_server):
    """The example as committed, with only its Defines changed to paths and
    users of this machine."""
    user = config_server.user or pwd.getpwuid(os.getuid()).pw_name
    prefix = os.path.join(config_server.root, "run", "wsgi")
    for key in ("a", "b"):
        os.makedirs(os.path.join(config_server.root, key, "public"))
        venv = os.path.join(config_server.root, key, "venv")
        os.makedirs(venv)
        with open(os.path.join(venv, "pyvenv.cfg"), "w") as f:
            f.write("home = %s\n" % os.path.dirname(sys._base_executable))
    status, output = config_server.configtest(render_example({
        "SH_PORT": "80",
        "SH_SOCKET_PREFIX": prefix,
        "SH_A_HOST": "a.example.test",
        "SH_A_USER": user,
        "SH_A_HOME": os.path.join(config_server.root, "a"),
        "SH_B_HOST": "b.example.test",
        "SH_B_USER": user,
        "SH_B_HOME": os.path.join(config_server.root, "b"),
    }))
    assert status == 0, output
    assert "Syntax OK" in output
