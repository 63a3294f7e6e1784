"""What the existing readers see during faults and on big packs (issue 14): ``python -m sim run``
captures (extended output + its CAPTURE.gaps.json timing sidecar) replayed through cellchain's
own decoder (cellchain/extout.py, written from shared/spec/extended-output-123.md), checked
against what the spec says a reader must see. Short runs on the cpython engine."""
import json
import os
import subprocess
import sys

import pytest

from cellchain import extout as dec
from sim import engine, mp_engine, scenario, trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def capture(tmp_path, sc, duration=None, eng="cpython"):
    """Run a scenario with --extout and --trace; replay the capture with its sidecar's timing.
    Returns (header, {second: trace record}, [(second, packet)], decoder)."""
    tpath = str(tmp_path / "trace.jsonl")
    xpath = str(tmp_path / "capture.bin")
    engine.Simulation(scenario.load(sc), engine=eng, trace=tpath, extout=xpath).run(duration_s=duration)
    header, states, _ = trace.read(tpath)
    with open(xpath, "rb") as f:
        data = f.read()
    bursts, baud = dec.load_gaps(dec.gaps_path(xpath))
    assert sum(n for _, _, n in bursts) == len(data)          # the sidecar times every byte
    d = dec.Decoder(report=lambda msg: pytest.fail("decoder rejected: %s" % msg))
    packets = []
    last_t = -10 ** 9
    for t_ms, _off, chunk in dec.replay_bursts(data, bursts, baud):
        assert t_ms is not None and len(chunk) == dec.PACKET_LEN     # one packet per burst
        assert t_ms - last_t >= 400                                    # the idle gap readers need
        last_t = t_ms
        for p in d.feed_burst(chunk):
            packets.append((t_ms // 1000 + 1, p))                      # the trace second it went out in
    assert d.rejected == 0 and packets
    rules = dec.ReaderRules()                   # issue 22: nothing a reader receives breaks it
    for _, p in packets:
        assert not rules.check(p), (p, rules.violations)
    return header, {r["t"]: r for r in states}, packets, d


def pack(cells, **kw):
    sc = {"name": kw.pop("name", "readers"), "duration_s": kw.pop("duration_s", 60),
          "pack": {"cells": cells, "chemistry": "lifepo4", "capacity_ah": kw.pop("capacity_ah", 40),
                   "soc_pct": 50}}
    sc.update(kw)
    return sc


def healthy(p, cells):
    assert p["cells"] == cells and 1 <= p["cell"] <= cells
    assert not p["comm_error"] and p["pack_v"] > 0


def held_chain(p, cells):
    """What a reader gets during a link break or a dead board (issue 22): the same N and the
    last complete chain's values, detail cell 1..N, currents 'X', the communication flag,
    relays off; never N = 0, never a partial sum, never 0 V."""
    assert p["cells"] == cells and 1 <= p["cell"] <= cells
    assert p["pack_v"] > 3.0 * cells and p["cell_v"] > 2.5 and p["min_cell_v"] > 2.5
    assert p["charge_a"] is None and p["discharge_a"] is None and p["battery_a"] is None
    assert p["comm_error"] and not p["charge_allowed"] and not p["discharge_allowed"]


@pytest.mark.parametrize("kind", ["link_break", "board_power_loss"])
def test_link_break_and_dead_board_keep_the_chain_flagged(tmp_path, kind):
    fault = {"t": 20, "until": 45, "kind": kind}
    fault.update({"position": 2} if kind == "link_break" else {"cell": 3})
    header, at, packets, _ = capture(tmp_path, pack(5, duration_s=70, charger={"max_a": 5}, load={"a": 3},
                                                    faults=[fault]))
    timeout = header["settings"]["comm_timeout_cycles"]
    during = [p for t, p in packets if 20 + timeout + 1 < t < 45]
    assert len(during) >= 15
    for p in during:
        held_chain(p, 5)
    for t, p in packets:
        if 5 < t < 19 or t > 60:
            healthy(p, 5)
        if p["cells"]:
            assert p["pack_v"] > 15.0          # never a partial sum of the cells still heard


@pytest.mark.skipif(not os.path.exists(mp_engine.MPY_DEFAULT), reason="MicroPython Unix port not installed")
def test_link_break_keeps_the_chain_on_the_micropython_engine(tmp_path):
    header, _, packets, _ = capture(tmp_path, pack(5, duration_s=50, faults=[
        {"t": 15, "until": 35, "kind": "link_break", "position": 2}]), eng="micropython")
    timeout = header["settings"]["comm_timeout_cycles"]
    during = [p for t, p in packets if 15 + timeout + 1 < t < 35]
    assert len(during) >= 10
    for p in during:
        held_chain(p, 5)
    assert any(p["cells"] == 5 for t, p in packets if t > 42)


def test_stuck_adc_sets_the_voltage_alarms_a_reader_acts_on(tmp_path):
    _, at, packets, _ = capture(tmp_path, pack(4, duration_s=60, charger={"max_a": 5}, load={"a": 3},
                                               faults=[{"t": 20, "until": 40, "kind": "stuck_adc",
                                                        "cell": 3, "mv": 0}]))
    during = [(t, p) for t, p in packets if 24 < t < 40]
    assert len(during) >= 10
    for t, p in during:
        assert not at[t]["charge_allowed"] and not at[t]["load_allowed"]    # the relays opened
        assert p["under_voltage"] and p["over_voltage"]        # and the reader is told why
        assert not p["charge_allowed"] and not p["discharge_allowed"]
        assert p["cells"] == 4 and p["pack_v"] > 12.0          # the last trusted pack, never 3 cells or 0 V
        if p["cell"] == 3:
            assert p["cell_v"] == 0
    assert any(p["cell"] == 3 for _, p in during)
    for t, p in packets:
        if 5 < t < 19 or t > 52:
            healthy(p, 4)
            assert not p["under_voltage"] and not p["over_voltage"]


def test_ntc_fault_sets_the_temperature_alarms_a_reader_acts_on(tmp_path):
    _, at, packets, d = capture(tmp_path, pack(4, duration_s=60, faults=[{"t": 20, "until": 40, "kind": "open_ntc",
                                                                          "cell": 2}]))
    during = [(t, p) for t, p in packets if 24 < t < 40]
    assert len(during) >= 10
    for t, p in during:
        assert "temp_sensor_fault" in at[t]["alarms"]
        assert p["under_temp"] and p["over_temp"]
        if p["cell"] == 2:
            assert p["cell_temp_c"] == -232.0                   # raw 0: plainly not a measurement
        else:
            assert -20 < p["cell_temp_c"] < 60
    for t, p in packets:
        if 5 < t < 19 or t > 45:
            assert not p["under_temp"] and not p["over_temp"]


def _sum_5mv(v_meas):
    return round(sum((int(round(v * 1000)) + 2) // 5 for v in v_meas) * 0.005, 3)


@pytest.mark.parametrize("cells", [99, 255])
def test_big_pack_voltage_is_the_sum_of_its_cells(tmp_path, cells):
    # charge start: the cells step up at once; the packet's pack voltage must still be the
    # sum of the cells it reports (section A's running sum is a newer frame than the detail)
    _, at, packets, _ = capture(tmp_path, pack(cells, duration_s=18, capacity_ah=100,
                                               charger={"max_a": 50}, load={"a": 0}))
    # (the exact rule, pack field = sum of the packet's own cells in 5 mV steps, is checked on
    # the encoder in host_tests/core/test_extout.py; here: the End board encodes between two
    # trace records, so its cells are those of the record before or of a frame in between)
    compared = 0
    for t, p in packets:
        r, before = at[t], at.get(t - 1)
        if (not p["cells"] or before is None or not r["comm_ok"] or not before["comm_ok"]
                or any(v is None for v in r["v_meas"] + before["v_meas"])):
            continue
        healthy(p, cells)
        lo, hi = sorted((_sum_5mv(before["v_meas"]), _sum_5mv(r["v_meas"])))
        assert lo - 0.0051 <= p["pack_v"] <= hi + 0.0051, (t, p["pack_v"], lo, hi)
        compared += 1
    assert compared >= 5


def test_reader_sum_of_cells_matches_the_pack_field_and_true_ah(tmp_path):
    """A reader that collects the detail cells for a round: their sum is the pack field; the
    Venus driver's Ah (capacity kWh x 1000 / (nominal from keys 4/5 x N)) is the true 40 Ah."""
    _, at, packets, d = capture(tmp_path, pack(4, duration_s=50, charger={"max_a": 0}, load={"a": 0}))
    cells = {}
    checked = 0
    for t, p in packets:
        if not p["cells"]:
            continue
        cells[p["cell"]] = p["cell_v"]
        if len(cells) == 4 and t > 15:
            assert abs(sum(cells.values()) - p["pack_v"]) <= 0.005 + 1e-9
            checked += 1
    assert checked >= 20
    rnd = d.rounds.last
    assert rnd is not None
    p = packets[-1][1]
    assert round(p["capacity_kwh"] * 1000 / (rnd["vnom_v"] * p["cells"])) == 40


def test_sim_run_cli_writes_the_sidecar_and_the_decoder_uses_it(tmp_path):
    xpath = str(tmp_path / "cap.bin")
    r = subprocess.run([sys.executable, "-m", "sim", "run", "--scenario", "comm_loss", "--duration", "12",
                        "--quiet", "--extout", xpath], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(str(tmp_path / "cap.gaps.json")) as f:
        side = json.load(f)
    assert side["baud"] == 9600 and side["bursts"] and side["bursts"][0][1] == 0
    r = subprocess.run([sys.executable, "-m", "cellchain.extout", xpath], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(side["bursts"])
    assert [p["t_ms"] for p in lines] == [b[0] for b in side["bursts"]]
