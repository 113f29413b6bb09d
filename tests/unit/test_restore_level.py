"""Restore's evaluation level: recorded by how the model was trained, overridable by config."""

from __future__ import annotations

from microdiff.restore.level import SURE_LEVEL, TWEEDIE_LEVEL, recorded_level
from microdiff.restore.stage import eval_scale


def test_sure_trained_models_are_evaluated_above_their_noise_level():
    assert recorded_level(True)["scale"] == SURE_LEVEL > 1.0
    assert recorded_level(False)["scale"] == TWEEDIE_LEVEL == 1.0


def test_the_config_level_overrides_the_recorded_one():
    cfg = {"level": recorded_level(True)}
    assert eval_scale({"level": "auto"}, cfg) == SURE_LEVEL
    assert eval_scale({}, cfg) == SURE_LEVEL
    assert eval_scale({"level": 1.0}, cfg) == 1.0
    assert eval_scale({}, {}) == 1.0  # models made before the level was recorded
