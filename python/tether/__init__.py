"""Tether: run WSGI applications in Apache httpd; a drop-in for mod_wsgi."""

import os

__version__ = "0.1.0"

_HERE = os.path.dirname(os.path.abspath(__file__))


def module_location():
    """Return the path of the built mod_tether.so inside this package."""
    return os.path.join(_HERE, "mod_tether.so")
