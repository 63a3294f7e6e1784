"""Virtual hal for the MicroPython Unix port: every board of a virtual pack in one process.

The host simulator (sim/mp_engine.py) starts ``micropython`` with this module and talks JSON
lines over stdin/stdout. The boards run their real role code (roles/begin|between|end.make)
with ``VirtualHw`` objects, joined by the virtual wire (sim/wire.py, which also runs here).

Protocol (one line each way per cycle; see docs/virtual-pack.md):
  host -> here, first line: {"cells": N, "dirs": [data dir per board], "cycle_ms": ms, "baud": b,
                             "board": {board-definition constants: numbers, strings, None}}
  host -> here, per cycle:  {"dt": ms, "c": [cell pin uV], "n": [NTC pin uV or null],
                             "i": [s1 low, s1 high, s2 low, s2 high uV], "sw": switch word,
                             "b": [button 0/1], "p": [powered 0/1], "k": [broken wire positions],
                             "set": [name, value] (optional settings change)}
  here -> host, per cycle:  {"d": [balance permille], "r": [charge, load], "x": "hex extout",
                             "st": {...End state...}, "msg": refusal or null}
Nothing here touches hardware; the module imports nothing at import time beyond the stdlib.
"""
import json
import sys

_NOISE = (0, 700, -900, 300, -200, 1100, -600, 400, -1000, 800, -300, 100, -700, 500, -400, 200)


class VirtualHw:
    def __init__(self, index, data_dir):
        self.index = index
        self.data_dir = data_dir
        self.cell_uv = 1650000
        self.temp_uv = None
        self.current_uv = [1650000, 1650000, 1650000, 1650000]
        self.switches = 0
        self.button = False
        self.duty = 0
        self.led = False
        self.charge = False
        self.load = False
        self.charge_led = False
        self.load_led = False
        self.link_tx = None
        self.link_rx = None
        self.extout_tx = None
        self._n = index

    def read_cell_uv(self):
        self._n = (self._n + 1) & 15
        return self.cell_uv + _NOISE[self._n] // 2   # ~0.7 mV p-p at the pin (divider 2:1)

    def read_temp_uv(self):
        return self.temp_uv

    def set_balance_duty(self, permille):
        self.duty = permille

    def set_led(self, on):
        self.led = on

    def button_down(self):
        return self.button

    def feed_watchdog(self):
        pass

    def reset_cause(self):
        return "power"

    def read_switches(self):
        return self.switches

    def read_current_uv(self, sensor, high_range):
        return self.current_uv[(sensor - 1) * 2 + (1 if high_range else 0)]

    def set_charge_relay(self, on):
        self.charge = on

    def set_load_relay(self, on):
        self.load = on

    def set_charge_led(self, on):
        self.charge_led = on

    def set_load_led(self, on):
        self.load_led = on


class Capture:
    def __init__(self):
        self.data = bytearray()

    def write(self, buf, n):
        for i in range(n):
            self.data.append(buf[i])
        return n

    def busy(self):
        return False


class BoardDef:
    """The board definition's constants as the host sent them (plus the cycle time)."""

    def __init__(self, cycle_ms, consts):
        for name in consts:
            setattr(self, name, consts[name])
        self.LINK_CYCLE_MS = cycle_ms


class ExtOut:
    def __init__(self, tx, pack):
        from core.extout import ExtOutSender
        self.sender = ExtOutSender(tx)
        self.pack = pack

    def update(self, snap, brain, dt_ms):
        if brain is not None:
            self.sender.cycle(dt_ms, snap, brain, self.pack.settings)
            if brain.should_save:
                brain.save_state()


class Pack:
    def __init__(self, cfg):
        import wire  # type: ignore[import-not-found]  # sim/wire.py, on the path the host gives
        self.wire = wire
        self.n = cfg["cells"]
        self.dirs = cfg["dirs"]
        self.cycle_ms = cfg.get("cycle_ms", 1000)
        self.bd = BoardDef(self.cycle_ms, cfg.get("board", {}))
        self.sched = wire.Scheduler()
        self.wires = [wire.Wire(self.sched, cfg.get("baud", 9600)) for _ in range(self.n - 1)]
        self.hws = [VirtualHw(k, self.dirs[k]) for k in range(self.n)]
        self.capture = Capture()
        self.hws[-1].extout_tx = self.capture
        self.roles = [None] * self.n
        self.on = [True] * self.n
        self.broken = []
        self.settings = None
        seed = 12345
        cyc_ns = self.cycle_ms * 1000000
        for k in range(self.n):
            self._make(k)
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            self.sched.at(0 if k == 0 else 1000 + seed % cyc_ns, self._cycle, k)

    def _make(self, k):
        from roles import begin, between, end
        from core import settings as cs
        hw = self.hws[k]
        if k < self.n - 1:
            hw.link_tx = self.wires[k]
        if k > 0:
            hw.link_rx = self.wires[k - 1].rx
        if k == 0:
            role = begin.make(hw, self.bd)
        elif k < self.n - 1:
            role = between.make(hw, self.bd)
        else:
            self.settings, _ = cs.load(hw.data_dir + "/settings.json")
            role = end.make(hw, self.bd, outputs=ExtOut(hw.extout_tx, self),
                            comm_timeout_cycles=self.settings.comm_timeout_cycles)
        self.roles[k] = role
        if k > 0:
            self.wires[k - 1].receiver = _drain(role)

    def _cycle(self, k):
        self.sched.at(self.sched.now + self.cycle_ms * 1000000, self._cycle, k)
        if not self.on[k]:
            return
        role = self.roles[k]
        role.tick(self.cycle_ms)
        role.cycle(self.cycle_ms)
        if k > 0:
            role.poll()

    def power(self, k, on):
        if on == self.on[k]:
            return
        self.on[k] = on
        if not on:
            hw = self.hws[k]
            hw.duty = 0
            hw.charge = hw.load = False
            if k > 0:
                self.wires[k - 1].receiver = None
            self.roles[k] = None
        else:
            self._make(k)
        self._wires()

    def _wires(self):
        for k in range(self.n - 1):
            self.wires[k].broken = (not self.on[k]) or ((k + 1) in self.broken)

    def apply_setting(self, name, value):
        from core import settings as cs
        end = self.roles[-1]
        if end is None:
            return "End board has no power"
        trial = self.settings.copy()
        msg = cs.apply_preset(trial, value) if name == "preset" else cs.apply(trial, name, value)
        if msg is None:
            cs.save(self.hws[-1].data_dir + "/settings.json", trial)
            self.settings.set_from(trial)
            end.brain.set_settings(self.settings, True)
        return msg

    def step(self, req):
        c = req["c"]
        ntc = req["n"]
        buttons = req.get("b")
        for k in range(self.n):
            hw = self.hws[k]
            hw.cell_uv = c[k]
            hw.temp_uv = ntc[k]
            if buttons:
                hw.button = bool(buttons[k])
        self.hws[0].current_uv = req["i"]
        self.hws[0].switches = req["sw"]
        p = req.get("p")
        if p:
            for k in range(self.n):
                self.power(k, bool(p[k]))
        k_list = req.get("k", [])
        if k_list != self.broken:
            self.broken = k_list
            self._wires()
        msg = None
        if req.get("set"):
            msg = self.apply_setting(req["set"][0], req["set"][1])
        self.sched.run_until(self.sched.now + req["dt"] * 1000000)
        end_hw = self.hws[-1]
        hexed = "".join("%02x" % b for b in self.capture.data)
        self.capture.data = bytearray()
        out = {"d": [h.duty for h in self.hws], "r": [1 if end_hw.charge else 0, 1 if end_hw.load else 0],
               "x": hexed, "msg": msg, "st": self.state()}
        return out

    def state(self):
        end = self.roles[-1]
        if end is None:
            return None
        snap = end.snap
        brain = end.brain
        fresh = snap.valid and snap.comm_ok
        return {"settings": self.settings.to_dict(),
                "cell_mv": [snap.cell_mv[i] if fresh else 0 for i in range(self.n)],
                "soc_c": brain.soc_c, "soc_calibrated": brain.soc_calibrated, "alarms": brain.alarms,
                "comm_ok": bool(snap.comm_ok), "current_ma": brain.current_ma,
                "break_position": brain.break_position}


def _drain(role):
    poll = role.poll

    def drain():
        while poll():
            pass
    return drain


def main():
    line = sys.stdin.readline()
    pack = Pack(json.loads(line))
    sys.stdout.write(json.dumps({"ready": pack.n}) + "\n")
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "quit":
            break
        try:
            out = pack.step(json.loads(line))
        except Exception as e:  # report to the host, which stops the run with this message
            if hasattr(sys, "print_exception"):
                sys.print_exception(e, sys.stderr)  # type: ignore[arg-type]
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
