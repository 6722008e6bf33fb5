"""manage.py runtether: serve this Django project with tether-express
start-server (the way mod_wsgi's runmodwsgi does with mod_wsgi-express).

It takes every start-server option.  Unless told otherwise it serves
WSGI_APPLICATION as a module (--application-type module) from the project's
directory, and Apache serves STATIC_ROOT at STATIC_URL and MEDIA_ROOT at
MEDIA_URL itself (--url-alias), so run `manage.py collectstatic` first.
"""

import argparse
import importlib.util
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from tether import cli
from tether.apache import ApacheError
from tether.express import SetupError
from tether.render import TemplateError


def wsgi_entry_point():
    """(module, callable, project directory) of settings.WSGI_APPLICATION,
    e.g. ("mysite.wsgi", "application", "/srv/mysite")."""
    target = getattr(settings, "WSGI_APPLICATION", None)
    if not target or "." not in target:
        raise CommandError("settings.WSGI_APPLICATION must name the WSGI "
                           "application, such as 'mysite.wsgi.application'")
    module, _, callable_object = target.rpartition(".")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise CommandError("the module %s of settings.WSGI_APPLICATION "
                           "cannot be found" % module)
    # The directory the module's top-level package is imported from.
    directory = os.path.dirname(os.path.abspath(spec.origin))
    for _ in range(module.count(".")):
        directory = os.path.dirname(directory)
    return module, callable_object, directory


def static_aliases():
    """[URL, directory] for STATIC_URL/STATIC_ROOT and MEDIA_URL/MEDIA_ROOT
    where both are set and the URL is a path on this server."""
    aliases = []
    for url_name, root_name in (("STATIC_URL", "STATIC_ROOT"),
                                ("MEDIA_URL", "MEDIA_ROOT")):
        url = getattr(settings, url_name, None)
        root = getattr(settings, root_name, None)
        if url and root and str(url).startswith("/") \
                and not str(url).startswith("//") and str(url) != "/":
            aliases.append([str(url), os.fspath(root)])
    return aliases


class Command(BaseCommand):
    help = ("Serve this project with Apache httpd and mod_tether "
            "(tether-express start-server), Apache serving STATIC_ROOT at "
            "STATIC_URL.  Takes every start-server option.")

    def add_arguments(self, parser):
        cli._add_server_options(parser)

    def handle(self, *args, **options):
        express = argparse.Namespace(**options)
        if not (express.script or express.entry_point):
            module, callable_object, directory = wsgi_entry_point()
            express.entry_point = module
            express.application_type = "module"
            if express.callable_object == "application":
                express.callable_object = callable_object
            if not express.working_directory:
                express.working_directory = directory
        try:
            aliases = static_aliases()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        given = {url for url, _ in express.url_alias or []}
        express.url_alias = list(express.url_alias or []) + [
            alias for alias in aliases if alias[0] not in given]
        try:
            status = cli.COMMANDS["start-server"](express)
        except (SetupError, ApacheError, TemplateError, ValueError,
                OSError) as exc:
            raise CommandError(str(exc))
        if status:
            raise CommandError("Apache exited with status %d" % status,
                               returncode=status)
