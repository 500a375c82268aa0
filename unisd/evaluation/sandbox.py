"""Moved to :mod:`unisd.sandbox` (this alias stays for one release)."""

import sys

from unisd import sandbox as _moved

sys.modules[__name__] = _moved
