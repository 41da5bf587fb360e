"""End to end with real ASGI frameworks: FastAPI, Starlette and Django (ASGI), each as its users write it.
The apps are in tests/apps/. (Flask and Django over WSGI are covered with the WSGI adapter.)
"""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest
from server_process import ServerFactory, ServerProcess

# -- FastAPI -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_server(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("fastapi_app:app")


def test_fastapi_json_and_path_parameters(fastapi_server: ServerProcess) -> None:
    with httpx.Client(base_url=fastapi_server.url) as client:
        assert client.get("/items/42", params={"q": "café"}).json() == {"item_id": 42, "q": "café"}
        invalid = client.get("/items/not-a-number")
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["path", "item_id"]
        created = client.post("/items", json={"name": "widget", "price": 10})
        assert created.status_code == 200
        assert created.json() == {"name": "WIDGET", "price_with_tax": 12.5}
        assert client.post("/items", json={"name": "no price"}).status_code == 422
        assert client.get("/nowhere").status_code == 404


def test_fastapi_body_upload(fastapi_server: ServerProcess) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    response = httpx.post(fastapi_server.url + "/upload", content=body)
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def pieces():  # chunked upload
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    response = httpx.post(fastapi_server.url + "/upload", content=pieces())
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_fastapi_streaming_response(fastapi_server: ServerProcess) -> None:
    with httpx.stream("GET", fastapi_server.url + "/stream", params={"lines": 7}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        lines = list(response.iter_lines())
    assert lines == [f"line {i}" for i in range(7)]


def test_fastapi_background_task_runs_after_the_response(fastapi_server: ServerProcess) -> None:
    response = httpx.post(fastapi_server.url + "/background", params={"name": "bg1"})
    assert response.json() == {"scheduled": "bg1"}
    assert fastapi_server.wait_record("fastapi-background-bg1") == "ran after the response"


def test_fastapi_lifespan_state_and_shutdown(serve: ServerFactory) -> None:
    server = serve("fastapi_app:app")
    assert server.record("fastapi-startup").exists()
    assert httpx.get(server.url + "/state").json() == {"greeting": "hello from the fastapi lifespan"}
    assert server.stop() == 0
    assert server.record("fastapi-shutdown").exists()


# -- Starlette ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette_server(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("starlette_app:app")


def test_starlette_routing(starlette_server: ServerProcess) -> None:
    with httpx.Client(base_url=starlette_server.url) as client:
        assert client.get("/").text == "starlette home"
        assert client.get("/users/ada", params={"page": "2"}).json() == {"user": "ada", "page": "2"}
        assert client.get("/users/caf%C3%A9").json()["user"] == "café"
        assert client.get("/missing").status_code == 404
        assert client.get("/count").status_code == 405


def test_starlette_request_stream(starlette_server: ServerProcess) -> None:
    def pieces():
        for _ in range(20):
            yield b"s" * 50_000

    result = httpx.post(starlette_server.url + "/count", content=pieces()).json()
    assert result["bytes"] == 1_000_000
    assert result["chunks"] >= 1


def test_starlette_streaming_response(starlette_server: ServerProcess) -> None:
    with httpx.stream("GET", starlette_server.url + "/numbers", params={"n": 30}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert list(response.iter_lines()) == [str(i) for i in range(30)]


def test_starlette_lifespan_state(starlette_server: ServerProcess) -> None:
    assert starlette_server.record("starlette-startup").exists()
    assert httpx.get(starlette_server.url + "/state").json() == {"greeting": "hello from the starlette lifespan"}


# -- Django (ASGI and WSGI) ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["application", "wsgi_application"], ids=["asgi", "wsgi"])
def django_server(module_serve: ServerFactory, request: pytest.FixtureRequest) -> ServerProcess:
    return module_serve(f"django_app:{request.param}")


def test_django_json_view(django_server: ServerProcess) -> None:
    response = httpx.get(django_server.url + "/hello/", params={"a": "1", "b": "two"})
    assert response.status_code == 200
    assert response.json() == {
        "method": "GET",
        "path": "/hello/",
        "query": {"a": "1", "b": "two"},
        "scheme": "http",
        "host": f"127.0.0.1:{django_server.port}",
        "remote_addr": "127.0.0.1",
    }


def test_django_form_post(django_server: ServerProcess) -> None:
    response = httpx.post(django_server.url + "/form/", data={"name": "Zoë", "count": "3"})
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "fields": {"name": "Zoë", "count": "3"}}


def test_django_middleware_and_host_checks(django_server: ServerProcess) -> None:
    with httpx.Client(base_url=django_server.url) as client:
        redirect = client.get("/hello")  # CommonMiddleware's APPEND_SLASH
        assert redirect.status_code == 301
        assert redirect.headers["location"] == "/hello/"
        assert client.get("/nope/").status_code == 404
        assert client.get("/hello/", headers={"Host": "evil.example"}).status_code == 400  # ALLOWED_HOSTS


def test_django_interface_is_detected(django_server: ServerProcess) -> None:
    output = django_server.output()
    if "Serving WSGI app" in output:
        return  # Django's WSGIHandler: no lifespan
    assert "Serving ASGI3 app" in output
    # Django's ASGI handler refuses the lifespan scope; with --lifespan auto that is fine.
    assert "lifespan' protocol appears unsupported" in output


def test_django_file_upload(django_server: ServerProcess) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, streamed to Django's upload handlers
    response = httpx.post(django_server.url + "/upload/", files={"f": ("blob.bin", blob)}, data={"k": "v"})
    assert response.status_code == 200
    assert response.json() == {"size": len(blob), "name": "blob.bin", "k": "v", "sha": hashlib.sha256(blob).hexdigest()}
