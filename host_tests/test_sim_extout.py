"""The --extout file of a virtual-pack run, decoded by the host decoder (cellchain.extout), says
what the trace says: pack voltage, SoC and the relay flags of the same second (issue 7)."""
import bisect
import os

import pytest

from cellchain import extout as dec
from sim import engine, mp_engine, scenario, trace

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")


def _run(tmp_path, name, eng, duration):
    sc = scenario.load(os.path.join(SCEN, name + ".json"))
    tpath = str(tmp_path / "trace.jsonl")
    xpath = str(tmp_path / "ext.bin")
    ends = []        # (file length after second t, t): which second each packet was sent in

    def mark(sim, rec):
        ends.append((sim.extout_written, rec["t"]))
    engine.Simulation(sc, engine=eng, trace=tpath, extout=xpath).run(duration_s=duration, on_second=mark)
    header, states, _ = trace.read(tpath)
    with open(xpath, "rb") as f:
        data = f.read()
    return header, {r["t"]: r for r in states}, data, ends


def _second_of(offset, ends):
    i = bisect.bisect_right([e[0] for e in ends], offset)
    return ends[i][1]


def _check(tmp_path, name, eng, duration):
    header, at, data, ends = _run(tmp_path, name, eng, duration)
    d = dec.Decoder(report=lambda msg: pytest.fail("decoder rejected: %s" % msg))
    packets = list(d.feed_file(data))
    assert d.rejected == 0
    assert len(packets) >= duration - 5            # one packet a cycle once the chain is up
    seen = set()
    compared = 0
    edges = 0
    for p in packets:
        t = _second_of(p["offset"], ends)
        r = at[t]
        relays = (r["charge_allowed"], r["load_allowed"])
        flags = (p["charge_allowed"], p["discharge_allowed"])
        seen.add(flags)
        if flags != relays:
            # the packet left in the End board's cycle; a chain break reported later in the
            # same second opens the relays at once (roles/end.py): then it shows the second before
            before = at.get(t - 1, r)
            assert flags == (before["charge_allowed"], before["load_allowed"]), (p["n"], t)
            edges += 1
            continue
        assert p["comm_error"] == ("comm_lost" in r["alarms"] or not r["comm_ok"]), (p["n"], t)
        assert p["soc_not_calibrated"] == (not r["soc_calibrated"])
        if r["soc_est"] is not None:
            assert abs(p["soc_pct"] - r["soc_est"]) <= 0.5 + 1e-6     # whole percent, rounded
        if r["comm_ok"] and all(v is not None for v in r["v_meas"]):
            # the End board's measured pack voltage (5 mV steps) and the model's
            assert abs(p["pack_v"] - sum(r["v_meas"])) <= 0.005 + 0.001 * header["cells"]
            assert abs(p["pack_v"] - r["pack_v"]) <= 0.02 * header["cells"]
            assert p["cells"] == header["cells"]
            assert (min(r["v_meas"]) - 0.005 - 1e-6 <= p["min_cell_v"] <= p["max_cell_v"]
                    <= max(r["v_meas"]) + 0.005 + 1e-6)         # 5 mV steps, float rounding
            compared += 1
    assert compared >= duration // 2
    assert edges <= sum(1 for t in at if t - 1 in at and (at[t]["charge_allowed"], at[t]["load_allowed"])
                        != (at[t - 1]["charge_allowed"], at[t - 1]["load_allowed"]))
    return seen, d


def test_extout_file_decodes_to_the_trace_values(tmp_path):
    seen, d = _check(tmp_path, "temperature", "cpython", 400)
    # the run has both relays closed and open (temperature limits), and both show in the flags
    assert (True, True) in seen and (False, False) in seen
    assert d.rounds.rounds >= 1 and d.rounds.last["firmware"].count(".") == 2


def test_comm_loss_flags_in_the_extout_file(tmp_path):
    seen, _ = _check(tmp_path, "comm_loss", "cpython", 260)
    assert (False, False) in seen and (True, True) in seen


@pytest.mark.skipif(not os.path.exists(mp_engine.MPY_DEFAULT), reason="MicroPython Unix port not installed")
def test_extout_file_of_the_micropython_engine_decodes_to_the_trace_values(tmp_path):
    seen, _ = _check(tmp_path, "comm_loss", "micropython", 160)
    assert (False, False) in seen and (True, True) in seen
