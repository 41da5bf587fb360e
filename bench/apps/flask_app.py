"""Flask bench app for (g): the same view as fastapi_app.py, the WSGI way. Needs flask (the project's test
extra, and the peers' venv)."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def read_item(item_id):
    return jsonify(item_id=item_id, q=request.args.get("q"))
