"""The model answers to the chip (issue 19): the virtual pack's cost per kind of call comes from the
chip tier run of the same firmware (sim/cost/rp2040.json, ``python -m chip_tier calibrate``).

Fails when the calibration is older than the firmware it prices (firmware/ or board_defs/ changed
since: run the chip tier and calibrate again), and when the model, priced with it, under-estimates
the chip by more than sim.cost.MAX_UNDER on any kind of call (16-cell frames here, 255-cell frames
in the slow tier: the calibration is fitted at 16 only).
"""
import pytest

from chip_tier import calibrate
from sim import cost


def test_calibration_is_from_this_firmware():
    rec = cost.load()
    assert rec is not None, "no sim/cost/rp2040.json: python -m chip_tier calibrate"
    assert rec["firmware_hash"] == cost.firmware_hash(), (
        "the model's calibration (commit %s) is older than the firmware it prices: run "
        "`.venv/bin/python -m chip_tier calibrate` (the chip tier) and commit sim/cost/rp2040.json" % rec["commit"])
    assert set(rec["kinds"]) == set(cost.KINDS), rec["kinds"]
    assert rec["label"] == cost.LABEL


def _check(run):
    rows = calibrate.compare(runs=(run,))
    for kind, (model, chip, ratio) in rows[run].items():
        assert model >= (1 - cost.MAX_UNDER) * chip, "%s %s: model %.3f ms, chip %.3f ms (x%.2f)" % (
            run, kind, model, chip, ratio)
    assert set(rows[run]) == set(cost.KINDS), rows[run]


def test_model_does_not_underestimate_the_chip_at_16_cells():
    _check("c16")


@pytest.mark.slow
def test_model_does_not_underestimate_the_chip_at_255_cells():
    _check("c255")
