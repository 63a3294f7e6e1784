"""micropython engine: every board's role code runs under the MicroPython Unix port.

One ``micropython`` process hosts all boards (firmware/hal/virtual.py) joined by the virtual
wire (sim/wire.py runs there too); each cycle this side sends the sensor values the host hw
objects produce (same conversions, noise and faults as the cpython engine) and applies the
outputs that come back (balance duty, relays, extended-output bytes). Protocol: see
firmware/hal/virtual.py and docs/virtual-pack.md.
"""
import json
import os
import subprocess

from sim import paths

MPY_DEFAULT = os.path.join(paths.ROOT, ".venv", "bin", "micropython")
_BOOT = ("import sys; sys.path[:0] = ['firmware', 'sim']; from hal import virtual; virtual.main()")


def board_consts(board_def):
    """The board definition's upper-case constants that JSON can carry."""
    out = {}
    for name in dir(board_def):
        if name.isupper() and not name.startswith("_"):
            v = getattr(board_def, name)
            if v is None or isinstance(v, (int, str, float)):
                out[name] = v
    return out


class MicropythonError(RuntimeError):
    pass


class MicropythonFirmware:
    link = "wire (micropython)"

    def __init__(self, sim, mpy=None):
        self.sim = sim
        self.mpy = mpy or os.environ.get("CELLCHAIN_MICROPYTHON") or MPY_DEFAULT
        self.proc = None
        self.on = [True] * len(sim.boards)
        self.broken = []
        self._state = None
        self._pending_set = None

    def boot(self):
        if not os.path.exists(self.mpy):
            raise MicropythonError("MicroPython Unix port not found at %s (make venv)" % self.mpy)
        self.proc = subprocess.Popen([self.mpy, "-X", "heapsize=64M", "-c", _BOOT], cwd=paths.ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        cfg = {"cells": len(self.sim.boards), "dirs": [b.data_dir for b in self.sim.boards],
               "cycle_ms": self.sim.cycle_ms, "baud": getattr(self.sim.board_def, "LINK_BAUD", 9600),
               "board": board_consts(self.sim.board_def)}
        reply = self._talk(cfg)
        if reply.get("ready") != len(self.sim.boards):
            raise MicropythonError("micropython did not start: %r" % (reply,))
        self._state = None

    def _talk(self, obj):
        try:
            self.proc.stdin.write(json.dumps(obj) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            raise MicropythonError("micropython process died: %s" % e) from None
        if not line:
            raise MicropythonError("micropython process ended (exit %s)" % self.proc.poll())
        try:
            reply = json.loads(line)
        except ValueError:
            raise MicropythonError("micropython said: %s" % line.strip()) from None
        if "error" in reply:
            raise MicropythonError("firmware error under micropython: %s" % reply["error"])
        return reply

    def cycle(self, dt_ms):
        b = self.sim.boards
        begin = b[0]
        req = {"dt": dt_ms, "c": [h.read_cell_uv() for h in b], "n": [h.read_temp_uv() for h in b],
               "i": [begin.read_current_uv(1, False), begin.read_current_uv(1, True),
                     begin.read_current_uv(2, False), begin.read_current_uv(2, True)],
               "sw": begin.read_switches(), "b": [1 if h.button else 0 for h in b],
               "p": [1 if x else 0 for x in self.on], "k": sorted(self.broken)}
        if self._pending_set is not None:
            req["set"] = self._pending_set
            self._pending_set = None
        out = self._talk(req)
        for h, d in zip(b, out["d"], strict=True):
            if self.on[h.index]:
                h.set_balance_duty(d)
        end = b[-1]
        if self.on[-1]:
            end.set_charge_relay(bool(out["r"][0]))
            end.set_load_relay(bool(out["r"][1]))
            if out["x"]:
                end.extout_tx.write(bytes.fromhex(out["x"]))
        self._state = out["st"]
        self.last_msg = out.get("msg")

    def power(self, i, on):
        self.on[i] = bool(on)
        if not on:
            self.sim.boards[i].power_off()

    def powered(self):
        return list(self.on)

    def link_break(self, position, broken):
        if broken and position not in self.broken:
            self.broken.append(position)
        elif not broken and position in self.broken:
            self.broken.remove(position)

    def apply_setting(self, name, value):
        self._pending_set = [name, value]   # applied at the start of the next cycle over there
        return None

    def state(self):
        st = self._state
        n = len(self.sim.boards)
        if st is None:
            return {"settings": self.sim.settings.to_dict(), "cell_mv": [0] * n, "soc_c": None,
                    "alarms": None, "comm_ok": None, "current_ma": None, "soc_calibrated": None,
                    "break_position": None}
        return st

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
