"""The worker's own open-file limit: raised to what the system allows, since every connection is a file.

Distributions start processes with a soft limit of 1,024 descriptors (the hard limit is often far higher):
a worker would refuse its thousand-and-first client with EMFILE while the kernel would allow a million. The
soft limit is a process's to raise up to the hard one, so each worker does, once, and logs it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("monoceros.error")

CEILING = 1 << 20  # with an unlimited hard limit, the kernel's usual fs.nr_open


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; (before, after) when it changed, else None."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft >= target:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("Cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return None
    log.info("Raised the open-file limit (RLIMIT_NOFILE) from %d to %d", soft, target)
    return soft, target
