"""Built-in teacher providers: base weights (adapter disabled), a frozen copy, the live student."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.teachers.add(
        "base",
        "unisd_plugins.teachers.providers:BaseTeacher",
        config="unisd.components.base:ComponentConfig",
        default=True,
        description="the initial weights: LoRA adapter disabled (no second copy), or a frozen copy "
        "under full fine-tuning; used when a recipe lists no teacher",
    )
    registry.teachers.add(
        "frozen_copy",
        "unisd_plugins.teachers.providers:FrozenCopyTeacher",
        config="unisd.components.base:ComponentConfig",
        description="a separate frozen copy of the initial model (the reference's setup)",
    )
    registry.teachers.add(
        "student",
        "unisd_plugins.teachers.providers:LiveStudentTeacher",
        config="unisd.components.base:ComponentConfig",
        description="the live student itself, without gradient",
    )
