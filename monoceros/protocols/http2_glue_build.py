"""Build the compiled glue (``monoceros.protocols._nghttp2``): cffi's API mode over ``http2_glue.c``.

``setup.py`` builds it at install where a compiler and ``nghttp2/nghttp2.h`` are there, and installs without it
(the ABI tier serves) where they are not. Run as a script it builds in place, for development and for CI's
AddressSanitizer run::

    python monoceros/protocols/http2_glue_build.py            # optimised, next to this file
    python monoceros/protocols/http2_glue_build.py --asan     # -fsanitize=address, for the HTTP/2 tests

This file is loaded by path at build time (the package is not importable then), so it imports only the
declarations module beside it, and that by path too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODULE = "monoceros.protocols._nghttp2"

# What the glue adds to the declarations (http2_glue.c says what each does).
GLUE_CDEF = """
typedef struct { void *handle; nghttp2_session *session; int error; int32_t last_id; ...; } mc_conn;
int mc_conn_new(mc_conn *c, void *handle, const nghttp2_option *option, size_t max_size, uint32_t max_count,
                double burst, double rate, size_t free_update);
void mc_conn_free(mc_conn *c);
int mc_submit(nghttp2_session *session, int32_t stream_id, int kind, const uint8_t *block, size_t len,
              size_t count);
int mc_respond(mc_conn *c, int32_t stream_id, const uint8_t *block, size_t len, size_t count, const uint8_t *body,
               size_t bodylen);
int mc_stop_after(mc_conn *c, int32_t stream_id);
void mc_upgraded(mc_conn *c);

extern "Python" {
    int mc_py_headers(void *handle, int32_t stream_id, uint8_t flags, int cat, int over, const uint8_t *block,
                      size_t len);
    int mc_py_data(void *handle, int32_t stream_id, const uint8_t *data, size_t len);
    int mc_py_end(void *handle, int32_t stream_id);
    int mc_py_close(void *handle, int32_t stream_id, uint32_t code);
    ssize_t mc_py_read(void *handle, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags);
}
"""


def _declarations() -> Any:
    spec = importlib.util.spec_from_file_location("_monoceros_http2_ffi", HERE / "http2_ffi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _header() -> Path | None:
    """``nghttp2/nghttp2.h`` where the compiler will look, or None."""
    roots = [os.environ.get("NGHTTP2_PREFIX", ""), sysconfig.get_config_var("prefix") or "", "/usr/local", "/usr",
             "/opt/homebrew", "/opt/local"]  # fmt: skip
    for root in roots:
        if root and (Path(root) / "include" / "nghttp2" / "nghttp2.h").is_file():
            return Path(root) / "include" / "nghttp2" / "nghttp2.h"
    return None


def make_builder(asan: bool = False) -> Any:
    """The ``cffi.FFI`` builder; ``asan`` adds AddressSanitizer and drops optimisation."""
    import cffi

    decl = _declarations()
    header = _header()
    optional = ""
    if header is not None:
        text = header.read_text(errors="replace")
        # Declare a backported option only where this header has it (API mode checks every declaration).
        optional = "\n".join(
            line for line in decl.CDEF_OPTIONAL.strip().splitlines() if line.split("(")[0].split()[-1] in text
        )
    builder = cffi.FFI()
    builder.cdef(decl.CDEF + optional + GLUE_CDEF)
    include_dirs = [str(header.parent.parent)] if header is not None else []
    args = ["-O0", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"] if asan else ["-O2"]
    builder.set_source(
        MODULE,
        (HERE / "http2_glue.c").read_text(),
        libraries=["nghttp2"],
        include_dirs=include_dirs,
        library_dirs=[str(header.parent.parent.parent / "lib")] if header is not None else [],
        extra_compile_args=args,
        extra_link_args=["-fsanitize=address"] if asan else [],
    )
    return builder


ffibuilder = make_builder()


def main(argv: list[str]) -> int:
    asan = "--asan" in argv
    builder = make_builder(asan)
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(builder.compile(tmpdir=tmp, verbose=False))
        for old in HERE.glob("_nghttp2.*.so"):
            old.unlink()  # the import would take another build first
        target = HERE / built.name
        shutil.copy(built, target)
    print(f"built {target}{' (AddressSanitizer)' if asan else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
