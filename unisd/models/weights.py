"""Moved to :mod:`unisd.models.wrapping` (this alias stays for one release)."""

import sys

from unisd.models import wrapping as _moved

sys.modules[__name__] = _moved
