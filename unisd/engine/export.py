"""Moved to :mod:`unisd.runs.export` (this alias stays for one release)."""

import sys

from unisd.runs import export as _moved

sys.modules[__name__] = _moved
