"""Moved to :mod:`unisd.runs.launch` (this alias stays for one release)."""

import sys

from unisd.runs import launch as _moved

sys.modules[__name__] = _moved
