"""Issue 20 item 5 on the virtual pack, both engines, judged on the trace (the End's relays and
alarms next to the TRUE cell state):

- a bad wire (link.byte_error_rate 1e-4..1e-2 on every hop) used to switch the relays about 860
  times an hour (468 at 8 cells, 1e-3); now a loss on a link that was damaging frames holds both
  relays open (LINK_QUALITY) until the link has been clean for HOLD_FRAMES frames: at most one
  switching of the relays in 10 minutes after the first close (<= 6 an hour), while a clean
  link closes them as fast as before (3 s);
- a board in a reset loop raises BOARD_RESET_LOOP with its position and holds both relays open;
- a link that never came up (+-3 % clocks) is LINK_NEVER_UP, not "broken before board 1" with a
  false CELL_COUNT_MISMATCH.
"""
import json
import os

import pytest

from roles.end import _HOLD_FRAMES as HOLD_FRAMES
from simlink import ENGINES, LinkRun

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")
MAX_PER_HOUR = 6


def _load(name):
    with open(os.path.join(SCEN, name + ".json")) as f:
        return json.load(f)


def _run(tmp_path, d, eng, name):
    r = LinkRun(tmp_path, d, eng, name=name)
    r.until(d["duration_s"])
    r.finish()
    return r


def operations(log):
    """Cycles in which the relay outputs changed, after the first close (the boot close is not
    chatter); both relays opening together is one operation. Also the relay changes counted
    one by one."""
    ops = 0
    changes = 0
    prev = None
    started = False
    for _, c, ld in log:
        if prev is not None and started and (c, ld) != prev:
            ops += 1
            changes += (c != prev[0]) + (ld != prev[1])
        if c or ld:
            started = True
        prev = (c, ld)
    return ops, changes


@pytest.mark.parametrize("eng", ENGINES)
@pytest.mark.parametrize("ber", [1e-4, 1e-3, 1e-2])
def test_a_bad_wire_does_not_make_the_relays_chatter(tmp_path, eng, ber):
    d = _load("link_noise")
    d["link"] = {"byte_error_rate": ber}
    r = _run(tmp_path, d, eng, "noise_%g" % ber)
    ops, changes = operations(r.log)
    hours = d["duration_s"] / 3600.0
    assert d["duration_s"] >= 600
    assert ops / hours <= MAX_PER_HOUR, (ber, ops, changes)
    states = r.states
    # the TRUE cells stay inside the LiFePO4 limits (nothing is charged or drained blind)
    assert all(2.9 < min(x["v_true"]) and max(x["v_true"]) < 3.7 for x in states)
    # held open after a failing link's loss: the alarm says so, the figure shows the damage
    held = [x for x in states if "link_quality" in x["alarms"]]
    assert all(not x["charge_allowed"] and not x["load_allowed"] for x in held)
    assert all("comm_lost" in x["alarms"] for x in held)
    closed = [x["t"] for x in states if x["charge_allowed"] and x["load_allowed"]]
    lost_after_close = closed and any("comm_lost" in x["alarms"] for x in states if x["t"] > closed[0])
    if lost_after_close:
        assert held                 # the link failed after it was up: held open, with the alarm
    if ber >= 1e-2:
        assert min(x["link_good"] for x in states[10:]) < 64


@pytest.mark.parametrize("eng", ENGINES)
def test_a_clean_link_closes_as_fast_as_before_and_a_cut_recovers_fast(tmp_path, eng):
    d = _load("link_noise")
    d.pop("link")
    d["duration_s"] = 60
    d["faults"] = [{"t": 20, "until": 30, "kind": "link_break", "position": 4}]
    r = _run(tmp_path, d, eng, "clean")
    first = next(t for t, c, ld in r.log if c and ld)
    # as on main: 3 s on the cpython engine, 4 s on the micropython one (its boards boot slower)
    assert first <= (3000 if eng == "cpython" else 4000), first
    at = r.at
    assert not at[25]["charge_allowed"] and "comm_lost" in at[25]["alarms"] and at[25]["break_position"] == 5
    assert "link_quality" not in at[25]["alarms"]
    assert at[36]["charge_allowed"] and at[36]["load_allowed"]    # a cut is not a failing link
    # the figure: the cut's slots (and boot's) are among the last 64, every other slot good
    assert 64 - 10 - 6 <= at[59]["link_good"] < 64 and at[25]["link_good"] < at[19]["link_good"] + 6
    assert HOLD_FRAMES >= 600


@pytest.mark.parametrize("eng", ENGINES)
def test_a_board_in_a_reset_loop_raises_an_alarm_with_its_position(tmp_path, eng):
    d = _load("link_reset_loop")
    r = _run(tmp_path, d, eng, "reset_loop")
    at = r.at
    assert at[19]["charge_allowed"] and at[19]["load_allowed"]
    assert "board_reset_loop" not in at[45]["alarms"]            # two restarts: not yet a loop
    flagged = min(t for t, x in at.items() if "board_reset_loop" in x["alarms"])
    assert 60 <= flagged <= 64, flagged                          # at the third restart
    after = [at[t] for t in at if t >= flagged]
    assert all(x["reset_position"] == 4 and "board_reset_loop" in x["alarms"] for x in after)
    assert not any(x["charge_allowed"] or x["load_allowed"] for x in after)
    assert all(2.9 < min(x["v_true"]) and max(x["v_true"]) < 3.7 for x in r.states)


@pytest.mark.parametrize("eng", ENGINES)
def test_a_link_that_never_came_up_is_not_a_broken_wire(tmp_path, eng):
    d = _load("link_never_up")
    r = _run(tmp_path, d, eng, "never_up")
    late = [x for t, x in r.at.items() if t >= 3]
    assert late and all("link_never_up" in x["alarms"] and "comm_lost" in x["alarms"] for x in late)
    assert not any("cell_count_mismatch" in x["alarms"] for x in r.states)
    assert all(x["break_position"] == 0 for x in late)
    assert not any(x["charge_allowed"] or x["load_allowed"] for x in r.states)
