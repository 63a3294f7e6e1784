"""SoC with a standby load inside the dead band (issue 13): the short version of the compressed
week of bench/soc_standby.py (the full week runs in ``make bench``). From 4 % with no sun (and
discharge restart 0 %, so the load may run from there), the 0.14 A standby load (inside the +-150 mA dead band) runs the pack into V-min within a compressed
day: the estimate follows the true SoC down (the load was never counted: +3.4 %/day of error)
and the empty recalibration fires and shows in the trace."""
import os

import pytest

from bench import soc_standby
from sim import mp_engine

ENGINES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(mp_engine.MPY_DEFAULT), reason="MicroPython Unix port not installed"))]
SHORT = {"soc_pct": 4, "duration_s": 1300, "settings": {"discharge_restart_pct": 0}, "charger": {"max_a": 0.5, "profile": "solar", "day_s": 864,
                                                         "schedule": [[0, False], [1200, True]]}}


@pytest.mark.parametrize("eng", ENGINES)
def test_standby_load_is_counted_and_the_empty_recalibration_fires(tmp_path, eng):
    r = soc_standby.standby_run(engine=eng, overrides=SHORT, workdir=str(tmp_path))
    assert r["max_error_pct"] <= 3.0, r
    assert r["load_off_t"] is not None and r["empty_recal_t"] is not None, r
    assert 0 < r["empty_recal_t"] - r["load_off_t"] <= 35, r       # EMPTY_MS after the V-min trip
    assert r["true_soc_at_empty_pct"] < 3.0, r
    # 0.14 A for load_off_t s on a 1 Ah pack: the count moved like the truth (within 1 %)
    drop_est = r["start"][0] - 0.0
    drop_true = r["start"][1] - r["true_soc_at_empty_pct"]
    assert drop_true > 1.5 and abs(drop_est - drop_true) <= 1.5, r
