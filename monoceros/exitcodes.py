"""Process exit codes. Distinct codes let a supervisor tell a broken app from a broken boot and stop
instead of crash-looping (gunicorn uses 3 and 4 the same way)."""

OK = 0
USAGE = 2  # a bad flag, setting or config file
BOOT_ERROR = 3  # the worker could not start: a listener could not bind, lifespan startup failed
APP_LOAD_ERROR = 4  # the app could not be imported or is not a WSGI/ASGI callable
BOOT_CRASH_LOOP = 5  # workers kept dying (a crash, a signal) before any of them was ready
