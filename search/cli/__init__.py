"""The ``nasnc`` command line."""

from search.cli._main import main

__all__ = ["main"]
