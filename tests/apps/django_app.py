"""A minimal Django project served over ASGI: settings configured in code, two views, no database."""

from __future__ import annotations

import hashlib

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="e2e-tests-only-not-a-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402  (needs the settings above)
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.GET.dict(),
            "scheme": request.scheme,
            "host": request.get_host(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
        }
    )


def form(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"method": request.method, "fields": request.POST.dict()})


def upload(request: HttpRequest) -> JsonResponse:
    upload = request.FILES["f"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return JsonResponse({"size": upload.size, "name": upload.name, "k": request.POST["k"], "sha": digest.hexdigest()})


urlpatterns = [path("hello/", hello), path("form/", form), path("upload/", upload)]

application = get_asgi_application()

# The same project under WSGI: Django's WSGIHandler, run on the worker's thread pool.
from django.core.wsgi import get_wsgi_application  # noqa: E402

wsgi_application = get_wsgi_application()
