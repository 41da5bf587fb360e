"""WSGI bench app (stdlib only). Behaviour is documented in common.py."""

import time

from common import HELLO, NOT_FOUND, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, json_document

TEXT_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
SLEPT_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(SLEPT)))]


def stream():
    for _ in range(STREAM_CHUNKS):
        yield STREAM_CHUNK


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        start_response("200 OK", TEXT_HEADERS)
        return [HELLO]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        answer = str(len(body)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
        return [answer]
    if path == "/json":
        payload = json_document(environ["REQUEST_METHOD"], path)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream()
    if path == "/sleep":
        time.sleep(SLEEP_SECONDS)
        start_response("200 OK", SLEPT_HEADERS)
        return [SLEPT]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(NOT_FOUND)))])
    return [NOT_FOUND]
