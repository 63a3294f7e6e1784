"""bench/board_time.py (make bench, section board_time) with tiny parameters: the figures are
measured on the virtual pack with board time, and have the keys docs/benchmarks.md names."""
import pytest

from bench import __main__ as bench_main
from bench import board_time


def test_board_time_section_with_tiny_parameters(monkeypatch):
    monkeypatch.setattr(board_time, "AWAKE_S", 8)
    res = {}
    board_time.run(res, ramp_sizes=(16,), trials=1, hours=0.002, workers=1, cycle_sizes=(16,))
    bt = res["board_time"]
    cal = bt["calibration"]
    assert cal["mode"] == "counted" and cal["factor"] > 1 and len(cal["ns_per_instr_per_role"]) == 3
    assert bt["awake_high"]["ns_per_instr"] > bt["awake"]["ns_per_instr"]
    r = bt["ramp"]["16"]
    # at board speed today's link does not always come up (docs/benchmarks.md): a trial is
    # either timed or counted as such, never lost
    assert r["trials"] == 1 and r["missed"] == 0
    assert (r["median_ms"] is None) == (r["relay_never_closed"] == 1)
    if r["median_ms"] is not None:
        assert 0 < r["median_ms"] <= r["worst_ms"] < 15000
    z = bt["ramp_zero_board_time_16"]               # calls taking no time: always timed
    assert z["relay_never_closed"] == 0 and 0 < z["median_ms"] < 15000
    roles = bt["awake"]["roles"]
    for role in ("begin", "between", "end"):
        a = roles[role]
        assert 0 < a["calls_fraction"] <= a["awake_fraction"] <= 1
        assert a["wakes_per_s"] > 0 and a["est_ma"] > 0
        assert abs(a["awake_fraction"] + a["asleep_fraction"] + a["idle_fraction"] - 1) < 1e-3
    # light sleep between frames (pico): Begin and the Betweens sleep, End (app transports) not;
    # the same pack without it draws the running current all the time
    assert bt["awake"]["light_sleep"] and not bt["awake_no_sleep"]["light_sleep"]
    assert roles["between"]["asleep_fraction"] > 0.5 and roles["begin"]["asleep_fraction"] > 0.5
    assert roles["between"]["light_sleeps_per_s"] >= 1 and roles["end"]["asleep_fraction"] == 0
    off = bt["awake_no_sleep"]["roles"]
    assert roles["between"]["est_ma"] < off["between"]["est_ma"] / 2
    assert all(off[r]["asleep_fraction"] == 0 for r in off)
    assert [d["opto"] for d in bt["drops"]] == [True, False]
    for d in bt["drops"]:
        assert d["hours"] == 0.002 and len(d["clock_ppm"]) == 16
        assert all(abs(p) <= 20000 for p in d["clock_ppm"])
    cyc = bt["cycle_ms"]["16"]                      # board ms per cycle(), counted
    assert 0 < cyc["between"]["median_ms"] < 5 and 0 < cyc["end"]["max_ms"] < 100
    rows = dict(bench_main.summary_rows(res))
    assert "board speed 16 cells: V-max on a 1 C ramp -> charge relay open" in rows


@pytest.mark.slow
def test_one_hour_with_drifting_clocks_and_bit_errors_drops_nothing():
    """The issue's 24 h target, for one hour (make bench runs the 24 h): 0 comm drops and no
    relay opening with clocks within +-2 % and byte error rate 1e-5, ideal opto edges."""
    d = board_time.drops(1.0, opto=False)
    assert d["relays_closed_fraction"] > 0.99
    assert d["comm_drops"] == 0 and d["relay_openings"] == 0
