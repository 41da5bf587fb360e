"""Not an app: the gunicorn worker class for the "gunicorn-uvicorn" bench server.

uvicorn.workers.UvicornWorker has no switch for uvicorn's access log (it formats
a record per request even when gunicorn has no access log), so this subclass turns
it off and asks for uvloop + httptools explicitly. Imported only by gunicorn in the
peers virtualenv.
"""

from uvicorn.workers import UvicornWorker


class QuietUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "access_log": False}
