"""A script that cannot be loaded: every request gets a 500."""

raise ImportError("tether test: this application never loads")
