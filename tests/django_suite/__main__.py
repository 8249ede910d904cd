"""``python -m tests.django_suite --backend DOTTED.PATH [--flavor ...]``: see ``--help``."""

import sys

from .cli import main

sys.exit(main())
