"""The chain on the MicroPython Unix port: one MicroPython process hosts all boards (the real
role, frame and codec code, sim/wire.py in virtual time); the test feeds it the cell values and
faults on stdin and checks the End snapshot it prints."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY = os.path.join(ROOT, ".venv", "bin", "micropython")

SCRIPT = r"""
import sys, json
sys.path.insert(0, "firmware")
sys.path.insert(0, "sim")
from wire import Chain, FakeCell, FakePair
from core import options
req = json.loads(sys.stdin.readline())
n = len(req["mv"])
cells = [FakeCell(req["mv"][i], req["t"][i], 0) for i in range(n)]
sw = options.word_for(options.range_code_for_cells(n), req["vbal"])
ch = Chain(n, sw, cells, FakePair(req["s1"], req["s2"]))
ch.run_cycles(3)
s = ch.end.snap
out = {"impl": sys.implementation.name, "comm_ok": s.comm_ok, "count": s.cell_count,
       "min_mv": s.min_mv, "min_cell": s.min_mv_cell, "max_mv": s.max_mv, "max_cell": s.max_mv_cell,
       "pack_mv": s.pack_mv, "s1": s.s1_ma, "s2": s.s2_ma,
       "mv": [s.cell_mv[i] for i in range(n)], "t": [s.cell_temp_dc[i] for i in range(n)]}
ch.remove(req["remove"])
ch.run_cycles(4)
out["after_comm_ok"] = ch.end.snap.comm_ok
out["break_position"] = ch.end.snap.break_position
print(json.dumps(out))
"""


def test_chain_of_16_on_the_unix_port():
    n = 16
    mv = [3100 + (i * 53) % 400 for i in range(n)]
    t = [-50 + (i * 71) % 500 for i in range(n)]
    req = {"mv": mv, "t": t, "vbal": 3500, "s1": 15000, "s2": -30000, "remove": 9}
    res = subprocess.run([MPY, "-c", SCRIPT], cwd=ROOT, input=json.dumps(req) + "\n",
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["impl"] == "micropython"
    assert out["comm_ok"] and out["count"] == n
    assert out["mv"] == mv and out["t"] == t
    assert out["min_mv"] == min(mv) and out["min_cell"] == mv.index(min(mv)) + 1
    assert out["max_mv"] == max(mv) and out["max_cell"] == mv.index(max(mv)) + 1
    assert out["pack_mv"] == sum(mv) and out["s1"] == 15000 and out["s2"] == -30000
    assert not out["after_comm_ok"] and out["break_position"] == 11
