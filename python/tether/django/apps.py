"""The Django application configuration of "tether" (or "tether.django")
in INSTALLED_APPS."""

from django.apps import AppConfig


class TetherConfig(AppConfig):
    # Django imports the management commands from the application's module:
    # tether.django.management.commands.runtether.
    name = "tether.django"
    label = "tether"
    verbose_name = "Tether (Apache httpd and mod_tether)"
    default = True
