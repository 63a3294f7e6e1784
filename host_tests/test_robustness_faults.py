"""Robustness campaign (issue 9): faults on the virtual pack, real firmware on the virtual wire.

In every case the relays are off within the documented time, the failing position is reported
(trace ``break_position`` / alarms / ``status``: the End board's per-cell bits) and nothing saved is
lost. Each 16-cell campaign is ONE simulation shared by its parametrised cases (a fault every
12 s, repaired after 5 s), so the whole file takes a few seconds. To the End board such a
campaign is a link that keeps failing (issue 20): the first loss recovers as a single break
does, each later one (within 10 minutes of the last) holds both relays open with LINK_QUALITY -
which the campaign checks too, so it is also the no-chatter test for clean breaks.

Documented times used:
- link break / dead board: docs/link-protocol.md (comm_ok only while a complete frame arrived
  within ``comm_timeout_cycles`` End cycles; an originated frame makes it False at once) and
  docs/pack-brain.md (loss of communication opens both relays in the same cycle): both relays
  open within (comm_timeout_cycles + 1) cycles of the fault (``doc_timeout_ms`` says why).
- a board's sensor fault: docs/pack-brain.md opens both relays "in the same cycle" as the
  snapshot shows it; end to end the docs give no figure. Used here: SENSOR_FAULT_CYCLES = 3
  (the board's next measurement, the next frame, the End board's next cycle).
"""
import pytest

from core.snapshot import CellStatus
from test_robustness_harness import SAMPLE_MS, Run, doc_timeout_ms, read_settings_file, read_soc_file

CHAIN = 16
PERIOD_S = 12           # one fault per 12 s in the shared runs
FAULT_S = 5             # each fault lasts 5 s
MID_FRAME_S = 0.06      # 60 ms after the Begin board started its frame: inside every hop's frame
RECOVER_S = 6           # relays closed again within this after the repair (3 enable samples + margin)
SENSOR_RECOVER_S = 10   # after a sensor fault: the input self-test's CLEAR good results first
#                         (core/probe.py), then 3 enable samples + margin
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


@pytest.mark.parametrize("position", [
    p for p in range(1, CHAIN)])
def test_broken_wire_opens_both_relays_and_is_located(wire_campaign, position):
    r = wire_campaign
    t = _t0(position)
    fault_ms = int((t + MID_FRAME_S) * 1000)
    first = position == 1
    if first:
        assert r.both_on_at(t), "relays not closed before the fault"
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S)
    assert off is not None, "relays not open (and kept open) while wire %d was broken" % position
    assert off - fault_ms <= doc_timeout_ms(r.header) + SAMPLE_MS, (off - fault_ms)
    during = [r.at_t[s] for s in range(t + 4, t + FAULT_S + 1)]
    assert all("comm_lost" in x["alarms"] and not x["comm_ok"] for x in during)
    assert all(x["powered"] == [True] * CHAIN for x in during)
    assert [x["break_position"] for x in during] == [position + 1] * len(during)   # board whose input failed
    after = r.at_t[t + FAULT_S + RECOVER_S]
    assert after["break_position"] == 0
    _recovered_or_held(after, first)


def _recovered_or_held(after, first):
    """After the repair: the first loss recovers; a later one is a failing link's (no chatter)."""
    if first:
        assert after["charge_allowed"] and after["load_allowed"], after["alarms"]
    else:
        assert not after["charge_allowed"] and not after["load_allowed"]
        assert "link_quality" in after["alarms"], after["alarms"]


# --- every board in turn losing power in the middle of a frame ------------------------------------

def _slot(board):
    """The power campaign's order: the End board first, at its old slot (by then it has saved its
    state; its restart starts a fresh link record, so the board after it is again a first loss),
    then boards 1..15."""
    return CHAIN if board == CHAIN else CHAIN + board


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

    for k in range(1, CHAIN + 1):
        t = _t0(_slot(k))
        r.at(t + MID_FRAME_S, lambda k=k: off(k))
        r.at(t + FAULT_S + MID_FRAME_S, lambda k=k: on(k))
    r.until(_t0(2 * CHAIN) + 1)
    r.finish()
    return r


@pytest.mark.parametrize("board", [
    k
    for k in range(1, CHAIN)])
def test_board_losing_power_mid_frame_opens_both_relays_and_is_located(power_campaign, board):
    r = power_campaign
    t = _t0(_slot(board))
    fault_ms = int((t + MID_FRAME_S) * 1000)
    first = board == 1          # the first loss the restarted End board sees
    if first:
        assert r.both_on_at(t)
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S)
    assert off is not None and off - fault_ms <= doc_timeout_ms(r.header) + SAMPLE_MS, off
    during = [r.at_t[s] for s in range(t + 4, t + FAULT_S + 1)]
    assert all(x["powered"][board - 1] is False for x in during)
    assert all("comm_lost" in x["alarms"] for x in during)
    # the first board downstream of the dead one reports the break (Begin dead: board 2)
    assert [x["break_position"] for x in during] == [board + 1] * len(during)
    after = r.at_t[t + FAULT_S + RECOVER_S]
    assert after["powered"] == [True] * CHAIN and after["break_position"] == 0
    _recovered_or_held(after, first)


def test_end_board_losing_power_mid_frame_restarts_safe_with_its_saved_data(power_campaign):
    r = power_campaign
    t = _t0(_slot(CHAIN))
    fault_ms = int((t + MID_FRAME_S) * 1000)
    assert r.both_on_at(t)
    # a dead End board: relay coils unpowered at once
    assert r.saved["relays_at_death"] == (False, False)
    off = r.both_off_by(t + MID_FRAME_S, t + FAULT_S + 2)
    assert off is not None and off - fault_ms <= SAMPLE_MS      # coils unpowered at once
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


# --- sensor faults on one board (4 cells: the point does not need 16) ------------------------------

def _sensor_case(tmp_path, faults, t_end):
    """A 4-cell run with these faults; the End board's per-cell status bits are the trace's."""
    r = Run(tmp_path, "robust_small", faults=faults)
    r.until(t_end)
    r.finish()
    return r


def _status(r, t):
    return r.at_t[t]["status"]


@pytest.mark.parametrize("mv", [0, 5500])       # the ADC at its low rail, and stuck high (5.5 V)
def test_stuck_cell_adc_is_a_located_sensor_fault_and_opens_both_relays(tmp_path, mv):
    r = _sensor_case(tmp_path, [{"t": 8, "until": 16, "kind": "stuck_adc", "cell": 3, "mv": mv}], 26)
    assert r.both_on_at(8)
    off = r.both_off_by(8, 16)
    assert off is not None and off - 8000 <= SENSOR_FAULT_CYCLES * r.cycle_ms + SAMPLE_MS, off
    during = [r.at_t[t] for t in range(8 + SENSOR_FAULT_CYCLES, 17)]
    assert all("volt_sensor_fault" in x["alarms"] for x in during)
    # a sensor fault, not a cell fault: no cell voltage alarm from the bogus reading
    assert not any({"over_voltage", "under_voltage"} & set(x["alarms"]) for x in during)
    assert all(x["balancing"][2] is False for x in during)                  # never drains the cell
    for t in (12, 15):                                                        # the failing position
        assert [bool(s & CellStatus.VOLT_SENSOR_FAULT) for s in _status(r, t)] == [False, False, True, False]
    assert r.at_t[16 + SENSOR_RECOVER_S]["charge_allowed"] and r.at_t[16 + SENSOR_RECOVER_S]["load_allowed"]


def test_cell_adc_frozen_at_a_plausible_value_is_detected(tmp_path):
    r = _sensor_case(tmp_path, [{"t": 8, "until": 30, "kind": "stuck_adc", "cell": 3}], 30)
    assert r.both_off_by(8, 30) is not None
    assert _status(r, 29)[2] & CellStatus.VOLT_SENSOR_FAULT
    assert "volt_sensor_fault" in r.at_t[29]["alarms"]


def test_open_ntc_is_a_located_sensor_fault_not_a_cell_fault(tmp_path):
    r = _sensor_case(tmp_path, [{"t": 8, "until": 16, "kind": "open_ntc", "cell": 2}], 24)
    during = [r.at_t[t] for t in range(8 + SENSOR_FAULT_CYCLES, 17)]
    assert all("temp_sensor_fault" in x["alarms"] for x in during)
    assert not any({"over_temp", "under_temp_charge", "under_temp_discharge"} & set(x["alarms"]) for x in during)
    assert [bool(s & CellStatus.TEMP_SENSOR_FAULT) for s in _status(r, 12)] == [False, True, False, False]
    # docs/pack-brain.md (issue 13): a failed NTC is the worst case for both relays (too hot AND
    # too cold), after the temperature debounce, while it lasts; no cell temperature alarm
    off = r.both_off_by(8, 16)
    assert off is not None and off - 8000 <= (SENSOR_FAULT_CYCLES + 3) * r.cycle_ms + SAMPLE_MS, off
    assert not any(c or ld for t, c, ld in r.log if off <= t <= 16000)
    assert "temp_sensor_fault" not in r.at_t[16 + RECOVER_S]["alarms"]


def test_every_ntc_open_trips_both_relays(tmp_path):
    faults = [{"t": 8, "until": 20, "kind": "open_ntc", "cell": c} for c in (1, 2, 3, 4)]
    r = _sensor_case(tmp_path, faults, 50)
    # docs/pack-brain.md: no valid temperature at all -> running relays trip, after TRIP_SAMPLES (3)
    off = r.both_off_by(8, 20)
    assert off is not None and off - 8000 <= (SENSOR_FAULT_CYCLES + 3) * r.cycle_ms + SAMPLE_MS, off
    assert all(s & CellStatus.TEMP_SENSOR_FAULT for s in _status(r, 14))
    assert all("temp_sensor_fault" in r.at_t[t]["alarms"] for t in range(14, 21))
    # a temperature trip keeps the relays off at least RETRY_MS (30 s), then they close again
    assert r.at_t[50]["charge_allowed"] and r.at_t[50]["load_allowed"]


# --- watchdog reset in the middle of a cycle ---------------------------------------------------------

def test_watchdog_reset_mid_cycle_starts_safe_and_restores_soc_settings_and_calibration(tmp_path):
    from core import store
    r = Run(tmp_path, "robust_small", events=[{"t": 5, "settings": {"vmax_mv": 3650}}])
    got = {}

    def seed_state():                       # a SoC the End board could not guess (not 50 %)
        store.save(r.data_path(4, "soc.json"), "soc", 1,
                   {"soc_c": 7321, "cycles": 7, "e_in_wh": 12345, "e_out_wh": 2345, "capacity_ah": 40})
        r.reboot(4, "power")

    def end_reset():
        got["soc"] = read_soc_file(r.data_path(4, "soc.json"))
        with open(r.data_path(4, "settings.json"), "rb") as f:
            got["settings_bytes"] = f.read()
        got["before"] = r.relays()
        r.reboot(4, "watchdog")
        got["at_boot"] = r.relays()

    def seed_calibration():                 # board 2 gets +30 mV offset, read at its next start
        store.save(r.data_path(2, "calibration.json"), "calibration", 1,
                   {"cell_delta_q16": 0, "cell_offset_01mv": 300})

    def between_reset():
        got["duty_before"] = r.sim.boards[1].duty_permille
        r.reboot(2, "watchdog")
        got["duty_at_boot"] = r.sim.boards[1].duty_permille

    r.at(0.0, seed_state)
    r.at(70.5, end_reset)
    r.at(74.0, seed_calibration)
    r.at(80.3, between_reset)
    r.until(90)
    with open(r.data_path(4, "settings.json"), "rb") as f:
        settings_after = f.read()
    r.finish()

    # End board: on before, safe at once after the reset and for the first cycle
    assert got["before"] == (True, True) and got["at_boot"] == (False, False)
    assert [e[1:] for e in r.log if e[0] == 71000] == [(False, False)]
    assert r.at_t[70 + RECOVER_S]["charge_allowed"] and r.at_t[70 + RECOVER_S]["load_allowed"]
    # ... reports its watchdog reset at its position (4) ...
    assert any(_status(r, t)[3] & CellStatus.WATCHDOG_RESET for t in (71, 72))
    # ... and lost nothing it had saved: SoC (and counters), settings
    assert got["soc"] is not None and got["soc"]["cycles"] == 7 and got["soc"]["e_in_wh"] >= 12345
    assert abs(r.at_t[71]["soc_est"] * 100 - got["soc"]["soc_c"]) <= 2
    assert 73.0 < r.at_t[69]["soc_est"] < 74.0          # the seeded SoC was in use before, too
    assert [c["t"] for c in r.changes] == [5]           # vmax change once, not undone by the reset
    assert r.changes[0]["settings"]["vmax_mv"] == 3650
    assert settings_after == got["settings_bytes"]
    # (the trace line of the second in which the End board restarted is judged on its own in
    # test_restart_does_not_report_good_settings_as_invalid)
    assert not any("settings_invalid" in x["alarms"] for x in r.states if x["t"] not in (1, 71))
    state = read_soc_file(r.data_path(4, "soc.json"))
    assert state["cycles"] == 7 and state["e_in_wh"] >= 12345

    # Between board 2: balance output off at start, reset reported at position 2, calibration
    # file in force after the restart (not calibrated before it: the file came at 74 s)
    assert got["duty_at_boot"] == 0
    assert not any(_status(r, t)[1] & CellStatus.WATCHDOG_RESET for t in range(72, 81))
    assert any(_status(r, t)[1] & CellStatus.WATCHDOG_RESET for t in (81, 82))
    assert not _status(r, 88)[1] & CellStatus.WATCHDOG_RESET   # one-shot: clears after good frames
    assert _status(r, 80)[1] & CellStatus.NOT_CALIBRATED
    assert not _status(r, 88)[1] & CellStatus.NOT_CALIBRATED

    def err(t):
        x = r.at_t[t]
        return x["v_meas"][1] - x["v_true"][1]
    assert abs(sum(err(t) for t in range(60, 70)) / 10) < 0.010
    assert abs(sum(err(t) for t in range(84, 90)) / 6 - 0.030) < 0.010


def test_restart_does_not_report_good_settings_as_invalid(tmp_path):
    r = Run(tmp_path, "robust_small")
    got = []

    def reset():
        r.reboot(4, "watchdog")
        app = r.sim.fw.app()
        got.append(app.ctl.brain.alarms)
    r.at(6.5, reset)
    r.until(9)
    r.finish()
    from core import alarms
    assert not got[0] & alarms.SETTINGS_INVALID
    assert not any("settings_invalid" in x["alarms"] for x in r.states)
