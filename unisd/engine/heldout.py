"""Moved to :mod:`unisd.runs.heldout` (this alias stays for one release)."""

import sys

from unisd.runs import heldout as _moved

sys.modules[__name__] = _moved
