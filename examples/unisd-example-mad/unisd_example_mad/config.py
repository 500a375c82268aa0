"""The config model of ``agreement_mad``, apart from the measure: importing it needs no torch, so
``unisd recipe validate`` checks a recipe that uses the measure without importing the measure itself
(it is registered with ``config=``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from unisd_plugins.agreement.config import AgreementConfig


class MADAgreementConfig(AgreementConfig):
    """Agreement (spec §2a) whose disagreement is the mean absolute deviation across contexts."""

    statistic: Literal["mad"] = Field("mad", description="fixed: this measure always uses the mean absolute deviation")
    center: Literal["mean", "median"] = Field(
        "median", description="deviations are measured from the mean or from the median of the K log-probs"
    )
