"""Django's entry into tether: with "tether" in INSTALLED_APPS, Django
imports this module (and so Django's own) and finds TetherConfig, whose
management commands live in tether/django/.  `import tether` alone never
imports Django."""

from .django.apps import TetherConfig

__all__ = ["TetherConfig"]
