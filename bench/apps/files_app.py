"""File downloads for bench/files.py: Starlette's FileResponse (ASGI; it uses http.response.pathsend where
the server offers it) and Flask's send_file (WSGI; wsgi.file_wrapper). Both serve $BENCH_FILES/<name>."""

from __future__ import annotations

import os

HERE = os.environ.get("BENCH_FILES", "/tmp")


def _starlette() -> object:
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def download(request: object) -> FileResponse:
        return FileResponse(os.path.join(HERE, request.path_params["name"]))  # type: ignore[attr-defined]

    return Starlette(routes=[Route("/{name}", download)])


def _flask() -> object:
    from flask import Flask, send_file

    app = Flask(__name__)

    @app.route("/<name>")
    def download(name: str) -> object:
        return send_file(os.path.join(HERE, name))

    return app


asgi = _starlette()
wsgi = _flask()
