"""Moved to :mod:`unisd.runs.sweep` (this alias stays for one release)."""

import sys

from unisd.runs import sweep as _moved

sys.modules[__name__] = _moved
