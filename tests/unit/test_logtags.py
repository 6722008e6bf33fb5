"""Every TETHERnnnn log tag in the C sources is documented, once."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tags_in_sources():
    tags = set()
    for path in glob.glob(os.path.join(ROOT, "module", "*.c")):
        with open(path) as f:
            tags.update(re.findall(r"TETHER_LOGNO\((\d{4})\)", f.read()))
    return tags


def _tags_in_doc():
    with open(os.path.join(ROOT, "module", "LOGTAGS.md")) as f:
        return re.findall(r"^\| TETHER(\d{4}) \|", f.read(), re.M)


def test_logtags_every_source_tag_is_documented():
    used = _tags_in_sources()
    assert used, "no tags found: has the macro been renamed?"
    missing = sorted(used - set(_tags_in_doc()))
    assert not missing, "add these tags to module/LOGTAGS.md: %s" % missing


def test_logtags_doc_lists_each_tag_once_and_only_used_ones():
    documented = _tags_in_doc()
    assert len(documented) == len(set(documented))
    stale = sorted(set(documented) - _tags_in_sources())
    assert not stale, "module/LOGTAGS.md lists tags no longer used: %s" % stale
