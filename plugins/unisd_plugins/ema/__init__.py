"""Built-in plugin: the EMA teacher (spec §2b)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.teachers.add(
        "ema",
        "unisd_plugins.ema.teacher:EMATeacher",
        config="unisd_plugins.ema.config:EMAConfig",
        description="teacher = exponential moving average of the student (fp32, LoRA-aware)",
    )
