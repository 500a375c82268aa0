"""Moved to :mod:`unisd.runs.replicate` (this alias stays for one release)."""

import sys

from unisd.runs import replicate as _moved

sys.modules[__name__] = _moved
