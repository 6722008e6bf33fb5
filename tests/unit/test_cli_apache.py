"""How tether-express finds the system's Apache without apxs: binary,
modules directory, built-in modules, MPM and MIME types, on fake layouts."""

import os

import pytest

from tether import apache
from tether.apache import Apache, ApacheError

DEBIAN_L = """Compiled in modules:
  core.c
  mod_so.c
  mod_watchdog.c
  http_core.c
  mod_log_config.c
  mod_logio.c
  mod_version.c
  mod_unixd.c
"""
PREFORK_BUILTIN_L = """Compiled in modules:
  core.c
  prefork.c
  http_core.c
  mod_so.c
"""


def executable(path, text="#!/bin/sh\nexit 0\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_httpd(path, listing):
    """An httpd that answers -l like the real one."""
    return executable(path, "#!/bin/sh\n[ \"$1\" = -l ] && cat <<'EOF'\n"
                      "%sEOF\n" % listing)


def modules_dir(path, *names):
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_bytes(b"")
    return path


def os_release(tmp_path, text):
    path = tmp_path / "os-release"
    path.write_text(text)
    return str(path)


# --- the httpd binary --------------------------------------------------------

def test_apache_find_httpd_on_path_prefers_apache2(tmp_path):
    bin_dir = tmp_path / "bin"
    executable(bin_dir / "httpd")
    executable(bin_dir / "apache2")
    assert apache.find_httpd(search_path=str(bin_dir), extra_dirs=()) == \
        str(bin_dir / "apache2")


def test_apache_find_httpd_falls_back_to_sbin_dirs(tmp_path):
    sbin = tmp_path / "sbin"
    executable(sbin / "httpd")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert apache.find_httpd(search_path=str(empty),
                             extra_dirs=(str(sbin),)) == str(sbin / "httpd")


def test_apache_find_httpd_ignores_files_that_are_not_executable(tmp_path):
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "apache2").write_text("not a program")
    with pytest.raises(ApacheError):
        apache.find_httpd(search_path=str(sbin), extra_dirs=(),
                          os_release=str(tmp_path / "none"))


def test_apache_find_httpd_explicit(tmp_path):
    httpd = executable(tmp_path / "my httpd")
    assert apache.find_httpd(str(httpd), search_path="") == str(httpd)
    with pytest.raises(ApacheError, match="--httpd-executable"):
        apache.find_httpd(str(tmp_path / "missing"))


@pytest.mark.parametrize("release, package", [
    ('ID=debian\n', "install the apache2 package (apt-get install apache2)"),
    ('ID=ubuntu\nID_LIKE=debian\n', "apt-get install apache2"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n',
     "install the httpd package (dnf install httpd)"),
    ('ID=fedora\n', "dnf install httpd"),
])
def test_apache_missing_message_names_the_package(tmp_path, release,
                                                  package):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ApacheError) as e:
        apache.find_httpd(search_path=str(empty), extra_dirs=(),
                          os_release=os_release(tmp_path, release))
    message = str(e.value)
    assert package in message
    assert message.startswith("Apache httpd (apache2 or httpd) was not found")
    assert message.count(".") == 1 and message.endswith(".")  # one sentence


def test_apache_missing_message_without_os_release_names_both(tmp_path):
    message = apache.missing_apache_message(str(tmp_path / "none"))
    assert "apache2 package on Debian/Ubuntu" in message
    assert "httpd on RHEL/Fedora" in message


# --- modules directory, MIME types, built-ins --------------------------------

def test_apache_find_modules_dir_takes_first_with_modules(tmp_path):
    empty = tmp_path / "usr/lib/apache2/modules"
    empty.mkdir(parents=True)
    rhel = modules_dir(tmp_path / "usr/lib64/httpd/modules", "mod_mime.so")
    other = modules_dir(tmp_path / "usr/local/apache2/modules", "mod_mime.so")
    candidates = (str(tmp_path / "missing"), str(empty), str(rhel),
                  str(other))
    assert apache.find_modules_dir(candidates=candidates) == str(rhel)
    assert apache.find_modules_dir(str(other), candidates) == str(other)
    assert apache.find_modules_dir(candidates=(str(empty),)) is None
    with pytest.raises(ApacheError, match="--modules-directory"):
        apache.find_modules_dir(str(tmp_path / "nope"))


def test_apache_find_mime_types(tmp_path):
    httpd_types = tmp_path / "etc/httpd/conf/mime.types"
    httpd_types.parent.mkdir(parents=True)
    httpd_types.write_text("text/plain txt\n")
    candidates = (str(tmp_path / "etc/mime.types"), str(httpd_types))
    assert apache.find_mime_types(candidates=candidates) == str(httpd_types)
    assert apache.find_mime_types(candidates=candidates[:1]) == os.devnull
    assert apache.find_mime_types(str(httpd_types), ()) == str(httpd_types)
    with pytest.raises(ApacheError, match="--mime-types"):
        apache.find_mime_types(str(tmp_path / "none"))


def test_apache_builtin_modules_from_httpd_l(tmp_path):
    httpd = fake_httpd(tmp_path / "apache2", DEBIAN_L)
    builtins = apache.builtin_modules(str(httpd))
    assert "mod_unixd.c" in builtins and "mod_log_config.c" in builtins
    assert "Compiled in modules:" not in builtins
    assert apache.builtin_modules(str(tmp_path / "missing")) == frozenset()


# --- MPM choice and LoadModule lines -----------------------------------------

def debian_like(tmp_path, *mods):
    mods = mods or ("mod_mpm_event.so", "mod_mpm_worker.so",
                    "mod_mpm_prefork.so", "mod_rewrite.so", "mod_mime.so",
                    "mod_authz_core.so")
    httpd = fake_httpd(tmp_path / "sbin/apache2", DEBIAN_L)
    return Apache(str(httpd), str(modules_dir(tmp_path / "modules", *mods)),
                  apache.builtin_modules(str(httpd)), os.devnull)


def test_apache_choose_mpm_prefers_event_then_worker_then_prefork(tmp_path):
    a = debian_like(tmp_path)
    assert a.choose_mpm() == "event"
    assert a.choose_mpm("prefork") == "prefork"
    os.unlink(os.path.join(a.modules_dir, "mod_mpm_event.so"))
    assert a.choose_mpm() == "worker"
    os.unlink(os.path.join(a.modules_dir, "mod_mpm_worker.so"))
    assert a.choose_mpm() == "prefork"
    with pytest.raises(ApacheError, match="the event MPM .* available: "
                                          "prefork"):
        a.choose_mpm("event")
    os.unlink(os.path.join(a.modules_dir, "mod_mpm_prefork.so"))
    with pytest.raises(ApacheError, match="no Apache MPM was found"):
        a.choose_mpm()


def test_apache_choose_mpm_with_a_built_in_mpm(tmp_path):
    httpd = fake_httpd(tmp_path / "httpd", PREFORK_BUILTIN_L)
    a = Apache(str(httpd), str(modules_dir(tmp_path / "m", "mod_mpm_event.so")),
               apache.builtin_modules(str(httpd)), os.devnull)
    assert a.choose_mpm() == "prefork"
    assert a.choose_mpm("prefork") == "prefork"
    with pytest.raises(ApacheError, match="prefork MPM compiled in"):
        a.choose_mpm("event")
    # A built-in MPM is never loaded.
    assert a.load_lines(["mpm_prefork_module"]) == []


def test_apache_load_lines_skip_built_ins_and_name_what_is_missing(tmp_path):
    a = debian_like(tmp_path)
    assert a.load_lines(["mpm_event_module", "unixd_module",
                         "log_config_module", "rewrite_module"]) == [
        ("mpm_event_module", os.path.join(a.modules_dir, "mod_mpm_event.so")),
        ("rewrite_module", os.path.join(a.modules_dir, "mod_rewrite.so"))]
    with pytest.raises(ApacheError) as e:
        a.load_lines(["alias_module"], {"alias_module": "--url-alias"})
    assert "mod_alias.so is neither compiled into" in str(e.value)
    assert "(needed for --url-alias)" in str(e.value)


def test_apache_discover_uses_overrides(tmp_path):
    httpd = fake_httpd(tmp_path / "bin/apache2", DEBIAN_L)
    mods = modules_dir(tmp_path / "mods", "mod_mpm_worker.so")
    types = tmp_path / "mime.types"
    types.write_text("")
    a = Apache.discover(str(httpd), str(mods), str(types))
    assert (a.httpd, a.modules_dir, a.mime_types) == (
        str(httpd), str(mods), str(types))
    assert a.is_builtin(apache.MODULES["unixd_module"])
    assert a.choose_mpm() == "worker"
