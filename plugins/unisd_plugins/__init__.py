"""UniSD's built-in components. Each subpackage is a plugin registered through the ``unisd``
entry-point group, exactly like a third-party plugin; its ``__init__`` only registers lazy paths."""
