"""A small Flask application served end to end."""
from flask import Flask, jsonify, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/hello/<name>")
def hello(name):
    return "hello %s" % name


@app.route("/form", methods=["POST"])
def form():
    return "form name=%s colour=%s" % (request.form["name"],
                                       request.form.get("colour", "none"))


@app.route("/json")
def json_route():
    return jsonify(items=[1, 2, 3], method=request.method,
                   script_root=request.script_root)


@app.route("/echo-json", methods=["POST"])
def echo_json():
    return jsonify(received=request.get_json())


@app.route("/where")
def where():
    return url_for("where", _external=True)


application = app
