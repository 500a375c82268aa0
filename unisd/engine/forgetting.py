"""Moved to :mod:`unisd.runs.forgetting` (this alias stays for one release)."""

import sys

from unisd.runs import forgetting as _moved

sys.modules[__name__] = _moved
