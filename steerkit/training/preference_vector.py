"""What BiPO and RePS share: one trained vector at one layer, fitted on preference triples."""

from __future__ import annotations

from steerkit._values import check_coefficient
from steerkit.lm.hooks import check_site
from steerkit.lm.interventions import LearnedVector
from steerkit.training._base import TrainedSteerer
from steerkit.training.preference_data import EncodedPreferences, as_preference_data, encode_preferences


def middle_layer(lm) -> int:
    """The block in the middle of ``lm`` (``max(1, L // 2)``), where rank-1 steering usually works best."""
    return max(1, lm.n_blocks // 2)


class PreferenceVectorSteerer(TrainedSteerer):
    """Base of the steerers whose learned state is one :class:`LearnedVector` added at every
    position after block ``self.layer`` (None = :func:`middle_layer`), scaled by
    ``self.coefficient`` when generating, and trained on
    :class:`~steerkit.training.preference_data.PreferenceData`."""

    def _vector(self, lm) -> LearnedVector:
        """A fresh zero vector at the steered site."""
        site = check_site(lm, middle_layer(lm) if self.layer is None else self.layer)
        return LearnedVector(lm.hidden_size, site=site, positions="all")

    def _training_data(self, lm, X, y) -> EncodedPreferences:
        """The triples (``PreferenceData`` as ``X``, or questions ``X`` and ``(n, 2)`` answers ``y``)
        as tokens with their unsteered log-probabilities."""
        return encode_preferences(lm, as_preference_data(X, y), batch_size=self.batch_size)

    def interventions(self) -> list[LearnedVector]:
        """The trained vector with ``coefficient`` applied, to install anywhere (the same objects
        each call: changing ``coefficient`` changes them)."""
        interventions = super().interventions()
        for vector in interventions:
            vector.coefficient = check_coefficient(self.coefficient)
        return interventions

    def _metadata(self) -> dict:
        return {"rank": 1, "activation": None, "variant": "vector"}
