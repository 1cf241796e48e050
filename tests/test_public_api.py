"""The top-level ``steerkit`` namespace exports sites and interventions like its other public names."""

import steerkit
from steerkit import lm
from steerkit.lm import interventions


def test_sites_and_interventions_are_exported_at_the_top_level():
    exported = {"Site": lm.Site, "Intervening": lm.Intervening, "intervene": lm.intervene,
                "AddVector": interventions.AddVector, "Ablate": interventions.Ablate,
                "SetProjection": interventions.SetProjection, "LowRank": interventions.LowRank,
                "Window": interventions.Window}
    assert set(exported) <= set(steerkit.__all__)
    assert all(getattr(steerkit, name) is value for name, value in exported.items())
    assert all(hasattr(steerkit, name) for name in steerkit.__all__)
