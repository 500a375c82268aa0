"""The UniSD version (one place; ``unisd.__version__`` re-exports it)."""

__version__ = "0.1.0"
