"""A script that never loads: every request to it is a 500."""

raise ImportError("soak: this application never loads, on purpose")
