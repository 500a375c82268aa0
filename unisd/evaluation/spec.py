"""Moved to :mod:`unisd.components.evaluators` (this alias stays for one release)."""

import sys

from unisd.components import evaluators as _moved

sys.modules[__name__] = _moved
