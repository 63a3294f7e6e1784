"""The virtual pack serves the app protocol on a TCP port; the cellchain CLI reads it."""
import subprocess
import sys
import threading
import time

from sim import engine, scenario
from sim.app_server import serve


def test_cellchain_cli_reads_the_virtual_pack():
    sim = engine.Simulation(scenario.load("comm_loss"))
    ap = serve(sim, 0)
    out = {}

    def client():
        out["r"] = subprocess.run([sys.executable, "-m", "cellchain", "--socket", "127.0.0.1:%d" % ap.port, "status"],
                                  capture_output=True, text=True, timeout=30)

    th = threading.Thread(target=client)
    try:
        for _ in range(5):
            sim.step()
        th.start()
        t0 = time.monotonic()
        while th.is_alive() and time.monotonic() - t0 < 40:
            sim.step()
            time.sleep(0.005)
        th.join(5)
    finally:
        ap.close()
        sim.close()
    r = out["r"]
    assert r.returncode == 0, r.stderr
    assert "cells      5" in r.stdout and "charge ON" in r.stdout and "load ON" in r.stdout
