"""make bench, link section: the figures come from the virtual wire and meet the issue's
targets; halving the baud rate doubles the latency (it is measured, not a constant)."""
import json
import os
import subprocess
import sys

from bench import link

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_targets_met_at_9600():
    m16 = link.measure(16)
    assert m16["aggregates_latency_ms"] <= 150 and m16["detail_cycles"] == 1 and m16["comm_ok"]
    m32 = link.measure(32)
    assert m32["detail_cycles"] == 1
    m255 = link.measure(255)
    assert m255["aggregates_latency_ms"] <= 1000 and m255["detail_cycles"] <= 8 and m255["comm_ok"]
    assert m255["hop_delay_bits"] == 10 + link.PROC_BITS


def test_latency_is_measured_in_bit_times():
    fast = link.measure(16, baud=9600)
    slow = link.measure(16, baud=4800)
    assert fast["aggregates_latency_bits"] == slow["aggregates_latency_bits"]
    assert abs(slow["aggregates_latency_ms"] - 2 * fast["aggregates_latency_ms"]) < 0.1
    more_proc = link.measure(16, proc_bits=6)
    assert more_proc["aggregates_latency_bits"] == fast["aggregates_latency_bits"] + 4 * 15


def test_python_m_bench_writes_results(tmp_path):
    """A partial run writes its section and keeps the others' figures (into a copy of
    bench/results.json: the tracked file stays as it is)."""
    import shutil
    results = tmp_path / "results.json"
    shutil.copy(os.path.join(ROOT, "bench", "results.json"), results)
    env = dict(os.environ, CELLCHAIN_BENCH_RESULTS=str(results))
    out = subprocess.run([sys.executable, "-m", "bench", "link"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "aggr ms" in out.stdout
    with open(results) as f:
        res = json.load(f)
    assert "memory" in res                # the sections not run are kept
    # issue 22: progress and the time each section took; the summary holds only this run's figures
    assert "[1/1] link ..." in out.stdout and "[1/1] link done in" in out.stdout
    assert "sections: link " in out.stdout and res["bench_run"]["sections"] == ["link"]
    summary = out.stdout[out.stdout.index("bench summary"):]
    assert "link 16 cells" in summary and "reaction" not in summary and "board speed" not in summary
    assert "FAIL" not in out.stdout
    for n in ("4", "16", "64", "255"):
        cell = res["link"]["cells"][n]
        assert cell["aggregates_latency_ms"] > 0 and cell["detail_cycles"] >= 1
