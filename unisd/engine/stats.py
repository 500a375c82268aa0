"""Moved to :mod:`unisd.runs.stats` (this alias stays for one release)."""

import sys

from unisd.runs import stats as _moved

sys.modules[__name__] = _moved
