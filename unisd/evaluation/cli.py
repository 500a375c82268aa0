"""Moved to :mod:`unisd.cli.eval_run` (this alias stays for one release)."""

import sys

from unisd.cli import eval_run as _moved

sys.modules[__name__] = _moved
