"""Moved to :mod:`unisd.runs.inspection` (this alias stays for one release)."""

import sys

from unisd.runs import inspection as _moved

sys.modules[__name__] = _moved
