"""Built-in plugin: teachers (registration only; implementation modules are imported lazily)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    pass
