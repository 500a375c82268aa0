"""The ``unisd`` command line."""
