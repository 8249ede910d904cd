"""Drop-in Django cache backends with stampede protection, tags, locks and fail-open errors."""

__version__ = "0.1.0.dev0"
