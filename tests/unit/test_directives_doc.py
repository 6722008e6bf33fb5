"""docs/directives.md gives a status for every mod_wsgi directive Tether
knows (each one in the command table of module/tether_config.c)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _table_directives():
    with open(os.path.join(ROOT, "module", "tether_config.c")) as f:
        source = f.read()
    names = re.findall(r'^\s*(?:AP_INIT_\w+|DIR_FLAG|GLOBAL_FLAG|'
                       r'NOT_SUPPORTED)\("(<?WSGI\w+)"', source, re.M)
    return set(names)


def _documented():
    with open(os.path.join(ROOT, "docs", "directives.md")) as f:
        return set(re.findall(r"`(<?WSGI\w+)>?`", f.read()))


def test_directives_doc_lists_every_directive_of_the_command_table():
    known = _table_directives()
    assert len(known) > 40, "the command table was not found"
    missing = sorted(known - _documented())
    assert not missing, "add these to docs/directives.md: %s" % missing
