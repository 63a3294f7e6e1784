"""Issue 20 item 6 on the virtual pack (both engines): two field writes (chemistry 3, then
vmax_mv 4200) on a running LiFePO4 pack with a charger set to 4.2 V per cell. Judged on the
TRUE cell voltages: they never pass the LiFePO4 V-max (3.70 V) by more than a frame's overshoot
(on main both writes were accepted and the cells were charged to 3.85 V and on)."""
import json
import os

import pytest

from simlink import ENGINES, LinkRun

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")


@pytest.mark.parametrize("eng", ENGINES)
def test_bare_chemistry_then_vmax_cannot_charge_lfp_to_4v2(tmp_path, eng):
    with open(os.path.join(SCEN, "settings_chemistry_lfp.json")) as f:
        d = json.load(f)
    r = LinkRun(tmp_path, d, eng)
    r.until(d["duration_s"])
    header = r.finish()
    assert header["settings"]["chemistry"] == 1 and header["settings"]["vmax_mv"] == 3700
    assert r.at[20]["charge_allowed"]                       # still charging after the writes
    assert max(max(x["v_true"]) for x in r.states) <= 3.700 + 0.020
    assert not r.at[d["duration_s"]]["charge_allowed"]      # V-max (LiFePO4) opened it
    # the End's settings never changed (its file)
    from core import settings as cs
    s, status = cs.load(os.path.join(r.sim.boards[-1].data_dir, "settings.json")) if r.sim.workdir else (None, None)
    if s is not None:
        assert s.chemistry == cs.LIFEPO4 and s.vmax_mv == 3700
