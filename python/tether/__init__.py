"""Tether: run WSGI applications in Apache httpd; a drop-in for mod_wsgi.

Inside Apache (Tether's daemon processes and Apache's children) this
package also carries the in-process API of the built-in module `_tether`
(alias `mod_wsgi`): version, process_group, request_data(),
subscribe_events(), ApacheHandler...  Outside Apache `_tether` does not
exist and the package is only the tether-express command.
"""

import os

__version__ = "0.1.0"

_HERE = os.path.dirname(os.path.abspath(__file__))


def module_location():
    """Return the path of the built mod_tether.so inside this package."""
    return os.path.join(_HERE, "mod_tether.so")


try:
    from _tether import *  # noqa: F401,F403 -- only inside Apache
except ImportError:
    pass
