"""Equal steps at equal sigma: every registered encoding (plugins too) moves its effective weights as dense does."""

from __future__ import annotations

import pytest

from evoboard.agents.encodings import ENCODINGS
from evoboard.suite.speed.mutation_scale import measure, relative_steps

NAMES = ENCODINGS.names()


@pytest.fixture(scope="module")
def cheetah():
    return measure("halfcheetah_mlp", NAMES, sigma=0.1, members=16)


@pytest.mark.parametrize("name", NAMES)
def test_every_weight_matrix_steps_like_dense_at_equal_sigma(cheetah, name):
    rows = cheetah[cheetah["encoding"] == name]
    assert list(rows["layer"]) == ["fc0", "fc1", "fc2"]
    for row in rows.itertuples():
        assert 0.9 <= row.ratio_to_dense <= 1.1, (row.layer, row.ratio_to_dense)
        assert row.delta_std / row.init_std == pytest.approx(0.1, rel=0.1), row.layer  # sigma x init std


def test_lowrank_starts_where_dense_starts(cheetah):
    init = cheetah.pivot(index="layer", columns="encoding", values="init_std")
    assert (init["lowrank"] / init["dense"]).between(0.9, 1.1).all()


def test_the_measure_sees_a_step_that_is_off():
    """Jevo.jl's calibration (Kaiming product, factors at full sigma) is reachable and measured as 2x dense."""
    from evoboard.agents.encodings import make
    from evoboard.suite.speed.mutation_scale import halfcheetah_mlp

    jevo = ENCODINGS.get("lowrank").Options(sigma=0.1, factor_gain=2**0.5, factor_sigma=0.1)
    dense = ENCODINGS.get("dense").Options(sigma=0.1)
    jevo_steps = relative_steps(make("lowrank", halfcheetah_mlp(), jevo), 16)
    dense_steps = relative_steps(make("dense", halfcheetah_mlp(), dense), 16)
    assert jevo_steps["fc0"][1] / dense_steps["fc0"][1] == pytest.approx(2.0, rel=0.1)
    sparse = ENCODINGS.get("sparse").Options(sparse_sigma=0.1, density=0.1)  # per chosen entry: sqrt(p) of dense
    per_entry = relative_steps(make("sparse", halfcheetah_mlp(), sparse), 16)
    assert per_entry["fc0"][1] / dense_steps["fc0"][1] == pytest.approx(0.1**0.5, rel=0.1)
