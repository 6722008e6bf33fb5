"""Django integration: put "tether" in INSTALLED_APPS and run

    python manage.py runtether [tether-express start-server options]

to serve the project's WSGI application through Apache httpd and mod_tether,
with Apache itself serving STATIC_ROOT at STATIC_URL (and MEDIA_ROOT at
MEDIA_URL).  Nothing here is imported by `import tether`.
"""
