"""``python -m monoceros``: the same command as the ``monoceros`` console script."""

from .cli import main

# The guard matters: multiprocessing's "spawn" re-imports the parent's __main__ (as __mp_main__) in each
# child, which must not start another server.
if __name__ == "__main__":
    raise SystemExit(main())
