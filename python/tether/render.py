"""Render the template files tether-express writes (httpd.conf, apachectl,
shims) and the example configurations in apache-conf/.

Templates are plain text files with `@NAME@` placeholders (upper case
letters, digits and underscores), the convention of autoconf's `.in` files:
it leaves Apache's `${VAR}` and the shell's `$var` alone.  A template may
hold named blocks: a line `#% name` starts a block that runs to the next
such line (text before the first one is a comment about the file).
"""

import os
import re

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "templates")

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_BLOCK = re.compile(r"^#% ([a-z][a-z0-9_]*)[ \t]*$", re.MULTILINE)


class TemplateError(Exception):
    """A template needs a value nobody gave, or a value cannot be written
    into an Apache configuration."""


def placeholders(text):
    """The set of placeholder names in a template's text."""
    return set(_PLACEHOLDER.findall(text))


def render_text(text, values, source="template"):
    """Replace every @NAME@ in `text` by str(values[NAME]).

    Raises TemplateError listing all names missing from `values`; values
    nobody asks for are ignored, so one dict can serve several templates.
    """
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise TemplateError("%s needs values for %s" % (
            source, ", ".join("@%s@" % m for m in missing)))
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def render_file(path, **values):
    """Render the template file at `path` (e.g. one of apache-conf/*.in)
    with keyword values: render_file(p, TETHER_MODULE="/x/mod_tether.so")."""
    with open(path, encoding="utf-8") as f:
        return render_text(f.read(), values, source=str(path))


def template_path(name):
    """Path of one of the package's own templates, e.g. 'httpd.conf.in'."""
    return os.path.join(TEMPLATE_DIR, name)


def render_template(name, **values):
    """Render one of the package's own templates (python/tether/templates)."""
    return render_file(template_path(name), **values)


def load_blocks(name):
    """The named blocks of a package template, as {name: text}."""
    with open(template_path(name), encoding="utf-8") as f:
        text = f.read()
    parts = _BLOCK.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    blocks = {}
    for i in range(1, len(parts), 2):
        blocks[parts[i]] = parts[i + 1].strip("\n")
    return blocks


class Blocks:
    """The named blocks of one template file, rendered on demand."""

    def __init__(self, name):
        self.name = name
        self.blocks = load_blocks(name)

    def render(self, block, **values):
        try:
            text = self.blocks[block]
        except KeyError:
            raise TemplateError("%s has no block %r" % (self.name, block))
        return render_text(text, values, "%s block %s" % (self.name, block))


def apache_escape(value):
    """Escape a value (usually a path) for use inside double quotes in an
    Apache configuration: "@PATH@" in a template.

    Apache reads backslash-escaped double quotes inside double quotes; a
    line break would end the directive, so such values are refused.
    """
    value = str(value)
    if "\n" in value or "\r" in value or "\0" in value:
        raise TemplateError("%r cannot be written into an Apache "
                            "configuration: it holds a line break" % value)
    if value.endswith("\\"):
        raise TemplateError("%r cannot be written into an Apache "
                            "configuration: it ends with a backslash" % value)
    return value.replace('"', '\\"')


def option_escape(value):
    """Escape a value for use inside double quotes in a name="value" option
    of WSGIDaemonProcess or WSGIScriptAlias: "@VALUE@" in a template.

    mod_tether reads \\" and \\\\ there as a quote and a backslash; line
    breaks are refused as apache_escape() does.
    """
    value = str(value)
    if "\n" in value or "\r" in value or "\0" in value:
        raise TemplateError("%r cannot be written into an Apache "
                            "configuration: it holds a line break" % value)
    return value.replace("\\", "\\\\").replace('"', '\\"')


def tidy(text):
    """Collapse runs of blank lines left by empty blocks into one."""
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"
