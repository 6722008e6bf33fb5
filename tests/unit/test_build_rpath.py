"""The built mod_tether.so finds libpython by itself: a recorded rpath.

Apache loads the module with no LD_LIBRARY_PATH and no LoadFile, so the
module must carry the directory of the libpython it was linked against.
The suite's Python may keep libpython on the default linker path, where a
lost rpath would go unnoticed at run time: this reads the ELF headers.
"""

import os
import re
import shutil
import subprocess
import sysconfig

import pytest


def _module_path():
    try:
        import tether
    except ImportError as exc:
        pytest.skip("the tether package is not installed: %s" % exc)
    path = tether.module_location()
    if not os.path.exists(path):
        pytest.skip("the installed tether package has no built module (%s)"
                    % path)
    return path


def _dynamic_section(path):
    readelf = shutil.which("readelf")
    if not readelf:
        pytest.skip("readelf is not installed (binutils)")
    out = subprocess.run([readelf, "-d", path], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    entries = {}
    for tag, value in re.findall(r"\((\w+)\)\s+.*?\[(.*)\]", out):
        entries.setdefault(tag, []).append(value)
    return entries


def test_build_module_records_rpath_to_libpython():
    entries = _dynamic_section(_module_path())
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = []
    for value in entries.get("RUNPATH", []) + entries.get("RPATH", []):
        paths += value.split(":")
    assert [os.path.realpath(p) for p in paths] == [os.path.realpath(libdir)], \
        entries


def test_build_module_links_the_libpython_in_that_directory():
    entries = _dynamic_section(_module_path())
    soname = sysconfig.get_config_var("INSTSONAME")
    libdir = sysconfig.get_config_var("LIBDIR")
    assert soname in entries.get("NEEDED", []), entries
    assert os.path.exists(os.path.join(libdir, soname))
