"""Robustness campaign (issue 9): faults on the virtual pack, real firmware on the virtual wire.

In every case the relays are off within the documented time, the failing position is reported
(trace ``break_position`` / alarms, the End board's per-cell status bits) and nothing saved is
lost. Each 16-cell campaign is ONE simulation shared by its parametrised cases (a fault every
12 s, repaired after 5 s), so the whole file takes a few seconds.

Documented times used:
- link break / dead board: docs/link-protocol.md (comm_ok only while a complete frame arrived
  within ``comm_timeout_cycles`` End cycles; an originated frame makes it False at once) and
  docs/pack-brain.md (loss of communication opens both relays in the same cycle): both relays
  open within comm_timeout_cycles cycles of the fault (``doc_timeout_ms``).
- a board's sensor fault: docs/pack-brain.md opens both relays "in the same cycle" as the
  snapshot shows it; end to end the docs give no figure. Used here: SENSOR_FAULT_CYCLES = 3
  (the board's next measurement, the next frame, the End board's next cycle).
"""
import pytest

from core.snapshot import CellStatus
from test_robustness_harness import Run, doc_timeout_ms, end_snapshot, read_settings_file, read_soc_file

CHAIN = 16
PERIOD_S = 12           # one fault per 12 s in the shared runs
FAULT_S = 5             # each fault lasts 5 s
MID_FRAME_S = 0.06      # 60 ms after the Begin board started its frame: inside every hop's frame
RECOVER_S = 6           # relays closed again within this after the repair (3 enable samples + margin)
SENSOR_FAULT_CYCLES = 3


def _t0(k):
    return 6 + PERIOD_S * (k - 1)


# --- a broken wire at each position of a 16-cell chain -------------------------------------------

@pytest.fixture(scope="module")
def wire_campaign(tmp_path_factory):
    r = Run(tmp_path_factory.mktemp("wires"), "robust_chain16")
    fw = r.sim.fw
    for p in range(1, CHAIN):
        t = _t0(p)
        r.at(t + MID_FRAME_S, lambda p=p: fw.link_break(p, True))
        r.at(t + FAULT_S, lambda p=p: fw.link_break(p, False))
    r.until(_t0(CHAIN) + 1)
    r.finish()
    return r


def _end_input_xfail(what):
    return pytest.mark.xfail(strict=True, reason=(
        "firmware: roles/end.py never sets snap.break_position when its OWN input is dead (%s): "
        "nothing arrives, comm_ok times out and both relays open, but break_position stays 0, so "
        "the user is not told where the chain is broken; expected the End board's position (16)" % what))


@pytest.mark.parametrize("position", [
    pytest.param(p, marks=_end_input_xfail("wire 15 -> End")) if p == CHAIN - 1 else p
    for p in range(1, CHAIN)])
def test_broken_wire_opens_both_relays_and_is_located(wire_campaign, position):
    r = wire_campaign
    t = _t0(position)
    fault_ms = int((t + MID_FRAME_S) * 1000)
    assert r.both_on_at(t), "relays not closed before the fault"
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S)
    assert off is not None, "relays not open (and kept open) while wire %d was broken" % position
    assert off - fault_ms <= doc_timeout_ms(r.header), (off - fault_ms)
    during = [r.at_t[s] for s in range(t + 4, t + FAULT_S + 1)]
    assert all("comm_lost" in x["alarms"] and not x["comm_ok"] for x in during)
    assert all(x["powered"] == [True] * CHAIN for x in during)
    assert [x["break_position"] for x in during] == [position + 1] * len(during)   # board whose input failed
    after = r.at_t[t + FAULT_S + RECOVER_S]
    assert after["charge_allowed"] and after["load_allowed"] and after["break_position"] == 0


# --- every board in turn losing power in the middle of a frame ------------------------------------

@pytest.fixture(scope="module")
def power_campaign(tmp_path_factory):
    r = Run(tmp_path_factory.mktemp("power"), "robust_chain16")
    r.saved = {}

    def off(k):
        if k == CHAIN:      # what the End board had saved when it died
            r.saved["soc"] = read_soc_file(r.data_path(CHAIN, "soc.json"))
            r.saved["settings"] = read_settings_file(r.data_path(CHAIN, "settings.json"))
            r.saved["relays_at_death"] = None
        r.power(k, False)
        if k == CHAIN:
            r.saved["relays_at_death"] = r.relays()

    def on(k):
        r.power(k, True)
        if k == CHAIN:
            r.saved["relays_at_boot"] = r.relays()
            snap = end_snapshot(r.sim)
            r.saved["boot_valid"] = snap.valid

    for k in range(1, CHAIN + 1):
        t = _t0(k)
        r.at(t + MID_FRAME_S, lambda k=k: off(k))
        r.at(t + FAULT_S + MID_FRAME_S, lambda k=k: on(k))
    r.until(_t0(CHAIN + 1) + 1)
    r.finish()
    return r


@pytest.mark.parametrize("board", [
    pytest.param(k, marks=_end_input_xfail("board 15 dead")) if k == CHAIN - 1 else k
    for k in range(1, CHAIN)])
def test_board_losing_power_mid_frame_opens_both_relays_and_is_located(power_campaign, board):
    r = power_campaign
    t = _t0(board)
    fault_ms = int((t + MID_FRAME_S) * 1000)
    assert r.both_on_at(t)
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S)
    assert off is not None and off - fault_ms <= doc_timeout_ms(r.header), off
    during = [r.at_t[s] for s in range(t + 4, t + FAULT_S + 1)]
    assert all(x["powered"][board - 1] is False for x in during)
    assert all("comm_lost" in x["alarms"] for x in during)
    # the first board downstream of the dead one reports the break (Begin dead: board 2)
    assert [x["break_position"] for x in during] == [board + 1] * len(during)
    after = r.at_t[t + FAULT_S + RECOVER_S]
    assert after["powered"] == [True] * CHAIN
    assert after["charge_allowed"] and after["load_allowed"] and after["break_position"] == 0


def test_end_board_losing_power_mid_frame_restarts_safe_with_its_saved_data(power_campaign):
    r = power_campaign
    t = _t0(CHAIN)
    fault_ms = int((t + MID_FRAME_S) * 1000)
    assert r.both_on_at(t)
    # a dead End board: relay coils unpowered at once
    assert r.saved["relays_at_death"] == (False, False)
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S + 2)
    assert off is not None and off - fault_ms <= 1000
    # back: outputs safe at construction, not closed before ENABLE_SAMPLES good cycles
    assert r.saved["relays_at_boot"] == (False, False)
    back_ms = int((t + FAULT_S + MID_FRAME_S) * 1000)
    first_cycle = [e for e in r.log if e[0] > back_ms][0]
    assert first_cycle[1:] == (False, False)
    # nothing saved is lost: settings and SoC come back from the data files
    saved_soc = r.saved["soc"]
    assert saved_soc is not None, "the End board had saved no state in %d s" % t
    assert r.saved["settings"] is not None
    rec = r.at_t[t + FAULT_S + 1]
    assert abs(rec["soc_est"] * 100 - saved_soc["soc_c"]) <= 2        # 0.02 %: one cycle of counting
    assert "settings_invalid" not in rec["alarms"]
    assert r.changes == []      # the settings in force never changed (a change writes a trace line)
    after = r.at_t[t + FAULT_S + RECOVER_S]
    assert after["charge_allowed"] and after["load_allowed"]
