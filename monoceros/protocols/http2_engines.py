"""The choice of HTTP/2 engine: libnghttp2 through the compiled glue, else in ABI mode, else ``h2``."""

from __future__ import annotations

from collections.abc import Callable

from .http2 import HTTP2Engine, HTTP2Settings
from .http2_ffi import Binding, Unavailable, load_abi, load_glue

EngineFactory = Callable[[HTTP2Settings, Callable[[], float]], HTTP2Engine]


def _nghttp2_factory(binding: Binding) -> EngineFactory:
    from .http2_nghttp2 import NGHTTP2Connection

    kind = NGHTTP2Connection
    if binding.tier == "glue":
        from .http2_glue import GlueConnection

        kind = GlueConnection

    def make(settings: HTTP2Settings, clock: Callable[[], float]) -> HTTP2Engine:
        return kind(binding, settings, clock)

    return make


def engine_factory(choice: str) -> tuple[EngineFactory, str]:
    """The engine ``choice`` asks for (``auto``, ``nghttp2`` or ``h2``), as a factory and a description of what
    serves (for the log). ``auto``: libnghttp2 through the compiled glue, else in ABI mode, else ``h2``.
    ``nghttp2`` fails when libnghttp2 cannot be loaded. Raises ImportError with the reason."""
    reasons = []
    if choice in ("auto", "nghttp2", "nghttp2-abi"):
        for loader in (load_glue, load_abi) if choice != "nghttp2-abi" else (load_abi,):
            try:
                binding = loader()
            except Unavailable as exc:
                reasons.append(str(exc))
                continue
            note = ""
            if tuple(int(p) for p in binding.version.split(".")[:2] if p.isdigit()) >= (1, 65):
                # 1.65 dropped RFC 7540 priorities and closed-stream retention: a few frames on closed streams
                # and malformed PRIORITY frames are then ignored where 1.52 answered them (h2spec 138/146).
                note = "; this version ignores some frames on closed streams (docs/deployment.md)"
            return _nghttp2_factory(binding), f"libnghttp2 {binding.version} ({binding.tier}){note}"
        if choice != "auto":
            raise ImportError("libnghttp2 cannot be used: " + "; ".join(reasons))
    try:
        import h2  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"no HTTP/2 engine: {'; '.join([*reasons, str(exc)])}") from None
    from .http2_h2 import H2Connection

    def make_h2(settings: HTTP2Settings, clock: Callable[[], float]) -> HTTP2Engine:
        return H2Connection(settings, clock)

    import h2 as h2_package

    why = f" ({reasons[-1]})" if reasons else ""
    return make_h2, f"h2 {h2_package.__version__}{why}"
