"""Robustness campaign (issue 9): the shared harness, and the check that the base scenarios are a
fair starting point (both relays closed, nothing alarming) so that every fault test starts from a
working pack and a relay that opens is the fault's doing.

``Run`` drives sim.engine.Simulation (cpython engine: the real role objects on the virtual wire)
one firmware cycle at a time and can act at any virtual instant, also in the middle of a cycle
(a board dying while a frame is on the wire), by splitting the engine's ``cycle(dt_ms)`` around
the action. It records the End board's relay outputs after every cycle and reads the trace at
the end. Only the simulator's public surface is used: Simulation(.step, .relays, .fw.cycle/power/
reset/state, .boards[i].data_dir, .end), scenario.load, trace.read (the End board's per-cell
status bits are the trace's ``status``).
"""
import os

from sim import engine, scenario, trace
from sim import paths  # noqa: F401  (firmware/ on sys.path)
from core import settings as cs
from core import store

SAMPLE_MS = 50          # the relay outputs are sampled this often (virtual time)
SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")


class _MidCycleFw:
    """Wraps the engine front: runs each cycle in pieces so that actions land at their exact
    virtual time (ms), e.g. mid-frame. Everything else is passed through."""

    def __init__(self, run, inner):
        self._run = run
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def cycle(self, dt_ms):
        run = self._run
        end = run.sim.t_ms                  # Simulation.step advances t_ms before cycling
        pos = end - dt_ms
        for t, fn in run.take_actions(pos, end):
            pos = self._advance(pos, t)
            fn()
        self._advance(pos, end)

    def _advance(self, pos, to):
        """Run the engine from pos to ``to`` (ms) in pieces of at most SAMPLE_MS, sampling the
        relay outputs after each piece (Run.fine_log)."""
        run = self._run
        while pos < to:
            step = min(SAMPLE_MS - pos % SAMPLE_MS, to - pos)
            self._inner.cycle(step)
            pos += step
            c, ld = run.sim.relays()
            run.fine_log.append((pos, bool(c), bool(ld)))
        return pos


class Run:
    """One simulated pack. ``at(t_s, fn)`` schedules fn at virtual time t_s (float seconds);
    ``until(t_s)`` runs cycles up to t_s; ``finish()`` closes and returns the trace states by t."""

    def __init__(self, tmp_path, base, seed=1, **overrides):
        d = dict(_load_json(base))
        for k, v in overrides.items():
            d[k] = v
        self.sc = scenario.load(d)
        self.trace_path = str(tmp_path / "trace.jsonl")
        self.extout_path = str(tmp_path / "extout.bin")
        self.workdir = str(tmp_path / "boards")
        os.makedirs(self.workdir, exist_ok=True)
        self.sim = engine.Simulation(self.sc, seed=seed, trace=self.trace_path, extout=self.extout_path,
                                     workdir=self.workdir)
        self.n = self.sc.cells
        self.cycle_ms = self.sc.cycle_ms
        self._actions = []
        self.log = []               # (t_ms after the cycle, charge relay, load relay)
        self.fine_log = []          # the same every SAMPLE_MS
        self.sim.fw = _MidCycleFw(self, self.sim.fw)
        self.header = None
        self.states = None
        self.at_t = None

    # --- time ---------------------------------------------------------------------------------
    def at(self, t_s, fn):
        self._actions.append((int(round(t_s * 1000)), len(self._actions), fn))
        self._actions.sort()

    def take_actions(self, t0, t1):
        due = [(t, fn) for t, _, fn in self._actions if t0 <= t < t1]
        self._actions = [a for a in self._actions if not t0 <= a[0] < t1]
        return due

    def until(self, t_s):
        end = int(round(t_s * 1000))
        while self.sim.t_ms < end:
            self.sim.step()
            c, ld = self.sim.relays()
            self.log.append((self.sim.t_ms, bool(c), bool(ld)))

    def finish(self):
        self.sim.close()
        self.header, self.states, self.changes = trace.read(self.trace_path)
        self.at_t = {r["t"]: r for r in self.states}
        return self.at_t

    # --- boards -------------------------------------------------------------------------------
    def power(self, board, on):
        """Board 1..n loses / regains power now (reset cause "power" on the way back)."""
        self.sim.fw.power(board - 1, on)

    def reboot(self, board, cause="watchdog"):
        """Board 1..n resets now and starts again at once, reporting ``cause`` (sim.fw.reset)."""
        self.sim.fw.reset(board - 1, cause)

    def data_path(self, board, name):
        return os.path.join(self.sim.boards[board - 1].data_dir, name)

    def relays(self):
        c, ld = self.sim.relays()
        return bool(c), bool(ld)

    # --- checks -------------------------------------------------------------------------------
    def both_off_by(self, t_fault_s, until_s):
        """Virtual time (ms, SAMPLE_MS resolution) when both relays were first seen open at or
        after the fault, provided they then stay open until ``until_s``; None otherwise."""
        t0 = int(round(t_fault_s * 1000))
        t1 = int(round(until_s * 1000))
        first = None
        for t, c, ld in self.fine_log:
            if t < t0 or t > t1:
                continue
            if not c and not ld:
                if first is None:
                    first = t
            elif first is not None:
                return None         # closed again while the fault lasted
        return first

    def both_on_at(self, t_s):
        want = int(round(t_s * 1000))
        for t, c, ld in self.log:
            if t == want:
                return c and ld
        raise AssertionError("no cycle ends at %s s" % t_s)


def _load_json(base):
    import json
    path = base if os.path.isabs(base) else os.path.join(SCEN, base + ".json")
    with open(path) as f:
        return json.load(f)


def doc_timeout_ms(header):
    """docs/link-protocol.md: comm_ok is True only while a complete frame has arrived within
    comm_timeout_cycles End cycles (the End counts a frame at its next cycle), and
    docs/pack-brain.md: loss of communication opens both relays in the same cycle. The last
    complete frame can have arrived just before the fault and be counted up to one End cycle
    later, so the worst case from the fault is (comm_timeout_cycles + 1) cycles (measured: a
    wire cut 60 ms into the frame in front of the End board opens the relays after 3.09 s at
    comm_timeout_cycles 3 and a 1 s cycle)."""
    s = header["settings"]
    return (s["comm_timeout_cycles"] + 1) * s["cycle_ms"]


def read_soc_file(path):
    values, status = store.load(path, "soc", 1)
    return values if status == store.OK else None


def read_settings_file(path):
    s, status = cs.load(path)
    return s if status == cs.LOADED else None


# --- the base scenarios are a fair start --------------------------------------------------------

def test_base_scenarios_close_both_relays_without_alarms(tmp_path):
    for base in ("robust_chain16", "robust_small"):
        r = Run(tmp_path / base, base)
        r.until(10)
        at = r.finish()
        assert at[6]["charge_allowed"] and at[6]["load_allowed"], base
        assert all(x["comm_ok"] and x["break_position"] == 0 for x in r.states[3:]), base
        bad = {"comm_lost", "settings_invalid", "volt_sensor_fault", "temp_sensor_fault", "over_voltage",
               "under_voltage"}
        assert not any(bad & set(x["alarms"]) for x in r.states[3:]), base
        assert all(c and ld for t, c, ld in r.log if t >= 6000), base


def test_mid_cycle_actions_run_at_their_virtual_time(tmp_path):
    r = Run(tmp_path, "robust_small")
    inner = r.sim.fw._inner
    pieces = []
    real_cycle = inner.cycle

    def spy(dt_ms):
        pieces.append(dt_ms)
        real_cycle(dt_ms)
    inner.cycle = spy
    seen = []
    r.at(2.25, lambda: seen.append(("a", sum(pieces))))     # 250 ms into the cycle 2000..3000
    r.at(2.5, lambda: seen.append(("b", sum(pieces))))
    r.at(4.0, lambda: seen.append(("c", sum(pieces))))      # at a cycle boundary
    r.until(5)
    r.finish()
    assert seen == [("a", 2250), ("b", 2500), ("c", 4000)]
    assert sum(pieces) == 5000
    assert [t for t, _, _ in r.log] == [1000, 2000, 3000, 4000, 5000]
