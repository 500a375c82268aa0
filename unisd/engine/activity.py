"""Moved to :mod:`unisd.runs.activity` (this alias stays for one release)."""

import sys

from unisd.runs import activity as _moved

sys.modules[__name__] = _moved
