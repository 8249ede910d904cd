"""Settings of the subprocesses of the operations tests: tests.settings, with CACHES and
LEXIGRAM_CACHE additions read from the environment (JSON), so each test can point a real
``manage.py cache`` process at its own servers."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import LEXIGRAM_CACHE as _BASE_APP

CACHES = json.loads(os.environ["LEXIGRAM_OPS_CACHES"])
LEXIGRAM_CACHE = {**_BASE_APP, **json.loads(os.environ.get("LEXIGRAM_OPS_APP", "{}"))}
