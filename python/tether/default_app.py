"""The page tether-express serves when it is given no application.

Apache loads this file as a WSGI script, so it imports nothing of tether.
"""

import html
import sys

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tether is running</title>
<style>
body {{ font-family: sans-serif; max-width: 40em; margin: 4em auto;
       line-height: 1.5; color: #222; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}
</style>
</head>
<body>
<h1>Tether is running</h1>
<p>Apache httpd is serving this page through mod_tether with Python
{python}.</p>
<p>Give <code>tether-express start-server</code> the path of your WSGI
script (a file defining <code>application</code>) to serve your own
application instead.</p>
<p>This request: <code>{method} {path}</code></p>
</body>
</html>
"""


def application(environ, start_response):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    body = PAGE.format(
        python=html.escape(sys.version.split()[0]),
        method=html.escape(environ.get("REQUEST_METHOD", "GET")),
        path=html.escape(path or "/")).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
