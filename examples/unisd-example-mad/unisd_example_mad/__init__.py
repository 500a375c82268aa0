"""unisd-example-mad: a third-party UniSD plugin.

It adds one disagreement measure, ``agreement_mad``, and one recipe, ``unisd-mad``. Registration is
lazy: ``"module:Class"`` strings are imported only when a recipe uses the measure, so installing the
plugin costs nothing at start-up; the config model is registered apart (``config=``, a module without
torch), so validating a recipe does not import the measure.
"""

from pathlib import Path

from unisd import hookimpl

RECIPE = Path(__file__).with_name("unisd-mad.yaml")


@hookimpl
def unisd_register(registry):
    registry.disagreements.add(
        "agreement_mad",
        "unisd_example_mad.measure:MADAgreement",
        config="unisd_example_mad.config:MADAgreementConfig",
        description="agreement weights from the mean absolute deviation of the K context log-probs",
    )
    registry.recipes.add("unisd-mad", RECIPE, description="vanilla SD + MAD agreement (example plugin)")
