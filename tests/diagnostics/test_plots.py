"""Diagnostic figures: structure of each figure and atomic PNG / SVG saving."""

from __future__ import annotations

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from steerkit.diagnostics import (  # noqa: E402
    geometry_report,
    plot_alignment,
    plot_best_so_far,
    plot_granularity,
    plot_magnitudes,
    plot_pair_heatmap,
    plot_search_landscape,
)
from tests.diagnostics.test_geometry import synthetic_activation_set  # noqa: E402


@pytest.fixture(scope="module")
def report():
    return geometry_report(synthetic_activation_set(n_layers=10))


def search_results():
    rows = [{"param_layer": layer, "param_steerer__coefficient": coef, "mean_test_score": 10 * coef + layer}
            for layer in (2, 4, 6, 8) for coef in (1.0, 2.0, 3.0) if (layer, coef) != (8, 3.0)]
    rows.append({"param_layer": 2, "param_steerer__coefficient": 1.0, "mean_test_score": 32.0})  # repeat: averaged
    return pd.DataFrame(rows).to_dict(orient="list")


def histories():
    rng = np.random.default_rng(0)
    return {"guided": [rng.uniform(0, 100, 20) for _ in range(3)],
            "unconstrained": [rng.uniform(0, 80, 20) for _ in range(3)]}


def check_saves(make, tmp_path):
    for suffix in (".png", ".svg"):
        path = tmp_path / f"figure{suffix}"
        make(path)
        assert path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "figure.svg"]  # no temp files left


def test_alignment_plot(report, tmp_path):
    fig = plot_alignment(report)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 1  # PL, RA and the top-k markers
    assert ax.get_xlabel() == "layer (output of block l)" and ax.get_ylabel() == "mean pairwise cosine"
    assert len(ax.collections[0].get_offsets()) == 9  # top-15 of the 9 summary layers
    check_saves(lambda path: plot_alignment(report, path=path), tmp_path)


def test_granularity_plot(report, tmp_path):
    ax = plot_granularity(report).axes[0]
    assert len(ax.get_lines()) == 2
    assert list(ax.get_lines()[1].get_ydata()) == [1.0, 1.0]
    assert ax.get_yscale() == "linear"  # G within one decade
    wide = report.layers.assign(granularity_pl=np.geomspace(0.5, 50, len(report.layers)))
    assert plot_granularity(replace(report, layers=wide)).axes[0].get_yscale() == "log"
    negative = wide.assign(granularity_pl=-wide.granularity_pl)
    assert plot_granularity(replace(report, layers=negative)).axes[0].get_yscale() == "linear"
    check_saves(lambda path: plot_granularity(report, path=path), tmp_path)


def test_pair_heatmap(report, tmp_path):
    fig = plot_pair_heatmap(report)
    assert len(fig.axes) == 2  # heatmap + colorbar
    ax = fig.axes[0]
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (5, 5)
    assert len(ax.texts) == 25
    assert f"layer {report.summary['alignment_pl_best_layer']}" in ax.get_title()
    assert "block structure" in ax.get_title() and "yes" in ax.get_title()
    assert "layer 3" in plot_pair_heatmap(report, layer=3).axes[0].get_title()
    with pytest.raises(ValueError):
        plot_pair_heatmap(report, layer=99)
    check_saves(lambda path: plot_pair_heatmap(report, path=path), tmp_path)


def test_magnitudes_plot_from_report_or_norms(report, tmp_path):
    ax = plot_magnitudes(report).axes[0]
    assert len(ax.get_lines()) == 1 and len(ax.collections) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(report.magnitudes, axis=0))
    assert len(plot_magnitudes(report.magnitudes[:, :4]).axes[0].get_lines()[0].get_xdata()) == 4
    check_saves(lambda path: plot_magnitudes(report, path=path), tmp_path)


def test_search_landscape(tmp_path):
    fig = plot_search_landscape(search_results())
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    values = ax.images[0].get_array()
    assert values.shape == (3, 4)  # coefficients × layers
    assert values[0, 0] == pytest.approx((12 + 32) / 2)  # the repeated configuration is averaged
    assert values.mask[2, 3]  # (layer 8, coefficient 3) never tried: blank
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "steerer__coefficient"
    frame = pd.DataFrame(search_results()).rename(columns={"param_steerer__coefficient": "param_coefficient"})
    assert plot_search_landscape(frame).axes[0].get_ylabel() == "coefficient"
    with pytest.raises(KeyError):
        plot_search_landscape(frame, y="param_alpha")
    check_saves(lambda path: plot_search_landscape(search_results(), path=path), tmp_path)


def test_best_so_far_plot(tmp_path):
    data = histories()
    ax = plot_best_so_far(data).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 2 and len(ax.collections) == 2
    expected = np.mean([np.maximum.accumulate(s) for s in data["guided"]], axis=0)
    np.testing.assert_allclose(lines[0].get_ydata(), expected)
    assert np.all(np.diff(lines[1].get_ydata()) >= 0)
    uneven = {"one": [[np.nan, 5.0, 3.0, 7.0], [1.0, 2.0]]}
    curve = plot_best_so_far(uneven, band="sd").axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(curve, [1.0, 3.5, 5.0, 7.0])
    with pytest.raises(ValueError):
        plot_best_so_far(data, band="iqr")
    check_saves(lambda path: plot_best_so_far(data, path=path), tmp_path)


def test_unknown_suffix_is_rejected(report, tmp_path):
    with pytest.raises(ValueError, match="png"):
        plot_alignment(report, path=tmp_path / "figure.jpg")
    assert not list(tmp_path.iterdir())
