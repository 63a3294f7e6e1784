"""One sensor and fault model for both engines (issue 19): sim/sensors.py computes the same
readings, bit for bit, on CPython (the cpython engine's sim/hw.py) and on the MicroPython Unix
port (the micropython engine's sim/mp_board.py); a stuck ADC is stuck - no noise - on both, a
frozen input keeps its noise on both."""
import json
import os
import subprocess

import pytest

from sim import engine, mp_engine, scenario, sensors, trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

READS = r"""
def reads(sensors):
    out = []
    s = sensors.BoardSensors(7, 3, 2, 1)
    for _ in range(50):
        out.append(s.cell_pin_uv(3312345))
        out.append(s.ntc_pin_uv(1650000, 3300000))
        out.append(s.current_pin_uv(-12345678, False))
        out.append(s.current_pin_uv(480000000, True))
    s.frozen_uv = 3400000
    out += [s.cell_pin_uv(3312345) for _ in range(20)]
    s.stuck_adc_uv = 0
    out += [s.cell_pin_uv(3312345) for _ in range(5)]
    s.open_ntc = True
    out.append(s.ntc_pin_uv(1650000, 3300000))
    s.open_ntc, s.short_ntc = False, True
    out.append(s.ntc_pin_uv(1650000, 3300000))
    out.append(s.current_pin_uv(None, True))
    return out
"""


def _reads_here():
    ns = {}
    exec(READS, ns)
    return ns["reads"](sensors)


def test_the_sensor_model_reads_the_same_on_cpython_and_on_the_unix_port():
    if not os.path.exists(mp_engine.MPY_DEFAULT):
        pytest.skip("MicroPython Unix port not installed")
    code = "import sys, json\nsys.path.insert(0, 'sim')\nimport sensors\n" + READS + \
        "print(json.dumps(reads(sensors)))\n"
    r = subprocess.run([mp_engine.MPY_DEFAULT, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    here = _reads_here()
    assert json.loads(r.stdout) == here
    cells = here[0:200:4]
    assert len(set(cells)) > 10                      # noise on a healthy reading
    assert len(set(here[200:220])) > 5               # frozen input: still noisy
    assert here[220:225] == [0] * 5                  # stuck: exactly the stuck value
    assert abs(here[225] - 3300000) < 2000 and here[226:] == [0, 0]   # open NTC: the rail (ADC noise)


@pytest.mark.skipif(not os.path.exists(mp_engine.MPY_DEFAULT), reason="MicroPython Unix port not installed")
def test_a_stuck_adc_is_stuck_and_a_frozen_input_noisy_on_both_engines(tmp_path):
    sc = {"pack": {"cells": 4, "soc_pct": 50}, "duration_s": 32, "charger": {"max_a": 5},
          "faults": [{"t": 8, "until": 30, "kind": "stuck_adc", "cell": 3},
                     {"t": 8, "until": 30, "kind": "frozen_adc", "cell": 2}]}
    got = {}
    for eng in ("cpython", "micropython"):
        path = str(tmp_path / (eng + ".jsonl"))
        engine.Simulation(scenario.load(sc), engine=eng, trace=path, workdir=str(tmp_path / eng)).run()
        _, states, _ = trace.read(path)
        got[eng] = {r["t"]: r["v_meas"] for r in states}
    for eng, at in got.items():
        stuck = {at[t][2] for t in range(12, 30)}
        frozen = {at[t][1] for t in range(12, 30)}
        assert len(stuck) == 1, (eng, stuck)                # bit-identical (no dither)
        assert len(frozen) > 1, (eng, frozen)               # the ADC noise stays on a frozen input
    assert got["cpython"][20][2] == got["micropython"][20][2]
