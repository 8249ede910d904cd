"""Cache backends for Django's ``CACHES`` setting."""
