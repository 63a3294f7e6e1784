"""Shared helpers for the issue 20 link tests (host_tests/test_sim_link_*.py): run a scenario on
either engine, act at exact virtual times, and sample the End board's relay outputs finely.

``LinkRun(scenario_dict, eng)`` wraps ``sim.engine.Simulation``; ``until(t_s)`` advances whole
cycles (the pack model steps as always); ``fine_until(t_s, step_ms)`` advances the firmware in
pieces of ``step_ms`` between two model steps and records the relays after every piece, so a
relay opening is timed to ``step_ms`` on both engines. Judged against the trace (the TRUE cell
state) by the tests. ``step_beside(sim, target, limit_s)``: a client thread (the CLI, a socket
client) against a simulation stepped in this thread until the client is done.
"""
import os
import threading
import time

import pytest

from sim import engine, mp_engine, scenario, trace

ENGINES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(mp_engine.MPY_DEFAULT), reason="MicroPython Unix port not installed"))]


def step_beside(sim, target, limit_s, pause_s=0.0):
    """Run ``target`` in a thread while stepping ``sim`` here until it ends or ``limit_s`` pass;
    returns the seconds the stepping took."""
    th = threading.Thread(target=target)
    th.start()
    t0 = time.monotonic()
    while th.is_alive() and time.monotonic() - t0 < limit_s:
        sim.step()
        if pause_s:
            time.sleep(pause_s)
    th.join(5)
    return time.monotonic() - t0


class LinkRun:
    def __init__(self, tmp_path, d, eng, seed=0, name="run"):
        self.sc = scenario.load(d)
        self.path = str(tmp_path / ("%s_%s.jsonl" % (name, eng)))
        self.sim = engine.Simulation(self.sc, engine=eng, seed=seed, trace=self.path,
                                     workdir=str(tmp_path / ("boards_%s_%s" % (name, eng))))
        self.log = []           # (t_ms, charge, load) after every cycle or piece
        self.states = None
        self.at = None

    def relays(self):
        c, ld = self.sim.relays()
        return bool(c), bool(ld)

    def until(self, t_s):
        end = int(round(t_s * 1000))
        while self.sim.t_ms < end:
            self.sim.step()
            self.log.append((self.sim.t_ms,) + self.relays())

    def fine_until(self, t_s, step_ms=50):
        """Like ``until`` in steps of ``step_ms`` (model, faults and firmware): the boards keep
        their own timing (their frame period was fixed at boot), only the sampling is finer."""
        sim = self.sim
        keep = sim.cycle_ms
        sim.cycle_ms = step_ms
        try:
            self.until(t_s)
        finally:
            sim.cycle_ms = keep

    def link_break(self, position, on=True):
        self.sim.fw.link_break(position, on)

    def first_both_open(self, t0_ms):
        for t, c, ld in self.log:
            if t >= t0_ms and not c and not ld:
                return t
        return None

    def switchings(self, t0_ms, t1_ms):
        """Relay state changes (each relay counted) between t0 and t1."""
        prev = None
        n = 0
        for t, c, ld in self.log:
            if t < t0_ms or t > t1_ms:
                prev = (c, ld) if t < t0_ms else prev
                continue
            if prev is not None:
                n += (c != prev[0]) + (ld != prev[1])
            prev = (c, ld)
        return n

    def finish(self):
        self.sim.close()
        header, self.states, _ = trace.read(self.path)
        self.at = {r["t"]: r for r in self.states}
        return header
