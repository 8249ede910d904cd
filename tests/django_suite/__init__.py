"""The project's runner for Django's own cache test suite (``python -m tests.django_suite``).

Django's ``tests/cache/tests.py`` is what every built-in backend must pass; running its test
class bodies against our backends is how "drop-in" is checked. Nothing from Django is kept in
the repository: the ``tests/`` tree of the installed Django's source distribution is
downloaded with pip on first use and cached (see :mod:`tests.django_suite.sources`).

The runner itself uses the standard library only, so any Python >= 3.11 can drive it; the
test run happens in the interpreter given with ``--python``. ``glue`` and ``recorder`` are
not imported here: they are copied into the run tree and imported by Django's
``runtests.py`` in that interpreter.
"""
