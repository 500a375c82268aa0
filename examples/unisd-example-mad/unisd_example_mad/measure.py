"""Multi-teacher agreement with the mean absolute deviation (MAD) as the disagreement statistic.

For the K log-probabilities a_1..a_K that the teacher gives one sampled token (or one sequence)
under the K auxiliary contexts::

    MAD(a) = (1/K) Σ_k |a_k − c|,   c = mean(a) or median(a)

MAD grows linearly with the spread where the variance grows quadratically, so a single context
that disagrees strongly weighs less than under ``statistic: variance``; with ``center: median``
that context does not even move the centre. Everything else (quantile scaling, cap, γ, floor,
sequence-level weights) is inherited from the built-in ``agreement`` measure.

Example::

    >>> import torch
    >>> mean_absolute_deviation(torch.tensor([[-1.0], [-2.0], [-4.0]]), "median")
    tensor([1.])
"""

from __future__ import annotations

from typing import ClassVar

import torch

from unisd_example_mad.config import MADAgreementConfig
from unisd_plugins.agreement.measure import Agreement


def mean_absolute_deviation(values: torch.Tensor, center: str, dim: int = 0) -> torch.Tensor:
    """Mean of ``|values − c|`` along ``dim``, ``c`` the mean or the median along ``dim``.

    The median of an even number of values is the midpoint of the two middle ones.
    """
    if center == "mean":
        c = values.mean(dim=dim, keepdim=True)
    elif center == "median":
        ordered = values.sort(dim=dim).values
        k = values.shape[dim]
        c = 0.5 * (ordered.narrow(dim, (k - 1) // 2, 1) + ordered.narrow(dim, k // 2, 1))
    else:
        raise ValueError(f"center must be 'mean' or 'median', got {center!r}")
    return (values - c).abs().mean(dim=dim)


class MADAgreement(Agreement):
    """The built-in agreement measure with the two statistics replaced by MAD."""

    Config: ClassVar = MADAgreementConfig

    def token_statistic(self, logps: torch.Tensor) -> torch.Tensor:
        """(K, B, T) log-probs → (B, T) mean absolute deviation across the K contexts."""
        return mean_absolute_deviation(logps, self.config.center)

    def sequence_statistic(self, seq_logps: torch.Tensor) -> torch.Tensor:
        """(K, B) length-normalised log-likelihoods → (B,) mean absolute deviation."""
        return mean_absolute_deviation(seq_logps, self.config.center)
