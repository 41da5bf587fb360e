"""The app served when no APP is given: a page about the request, and an echo endpoint."""
