"""Build the optional compiled glue for libnghttp2 (monoceros/protocols/http2_glue.c, through cffi).

Everything else is in pyproject.toml. Where there is no compiler or no ``nghttp2/nghttp2.h``
(``apt-get install libnghttp2-dev``, ``brew install libnghttp2``), the install goes on without the glue and
monoceros binds libnghttp2 at run time instead (or uses h2): the build never fails because of the glue.
``MONOCEROS_NO_GLUE=1`` skips it.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that reports a glue it cannot build, and goes on."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._skip(exc)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    @staticmethod
    def _skip(exc: BaseException) -> None:
        sys.stderr.write(
            f"monoceros: the HTTP/2 glue was not built ({exc}); libnghttp2 is bound at run time instead. "
            "Install a C compiler and libnghttp2's headers (libnghttp2-dev) for the fastest tier.\n"
        )


options = {}
if not os.environ.get("MONOCEROS_NO_GLUE"):
    options["cffi_modules"] = ["monoceros/protocols/http2_glue_build.py:ffibuilder"]

setup(cmdclass={"build_ext": OptionalBuildExt}, **options)
