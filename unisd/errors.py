"""The base class of errors caused by the user's input or environment.

The CLI prints these as one clear message (exit code 2) instead of a traceback. Plugins raise a
subclass (or one of the core's specific errors) for bad data, missing files and the like.
"""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""
