"""The micropython engine's boards (runs on the MicroPython Unix port, not on a board): every
board of a virtual pack in one process, each running its own BUILT IMAGE (build/<board>/<role>/:
the .mpy files of tools/build_images.py plus the image's board.py), joined by the virtual wire
(sim/wire.py). Host side: sim/mp_engine.py. Not part of any image (it lived in firmware/hal/
before issue 19).

The host simulator (sim/mp_engine.py) starts ``micropython`` with this module and talks JSON
lines over stdin/stdout. This module is the hardware layer: ``VirtualHw`` objects whose sensor
values come from the host every cycle. Every board's role is built as hal/loop.py builds it on a
board: ``roles.<role>.make(hw, board)`` with the modules of that board's image, and driven by
that image's own ``hal.loop.Loop``: each wake-up is ``Loop.step(now)`` at the board's virtual
ms, and the next one follows after the wait it returns; its light-sleep budget goes through the
image's own ``hal.sleep.LightSleep`` (on a stand-in machine) and, when that sleeps, the board is
deaf until it is awake again (characters reaching it are lost), as on the cpython engine. Each image keeps its own module namespace: while a board's code runs,
``sys.modules`` holds that image's modules and ``sys.path`` its folder, so a board imports only
what its image holds (a module missing from an image fails as it would on the board).

Sensors: each board reads its ADC pins through sim/sensors.py's ``BoardSensors`` (the same model,
seed and noise as the cpython engine's sim/hw.py): the host sends the TRUE values (cell uV, NTC
pin uV, uA through each current channel) and the fault state, the noise and the faults are
applied here, read by read, as the firmware reads them.

Protocol (one line each way per cycle; see docs/virtual-pack.md):
  host -> here, first line: {"cells": N, "dirs": [data dir per board], "cycle_ms": ms,
                             "images": {"begin"|"between"|"end": image folder}, "wire": folder of wire.py,
                             "seed": run seed, "div": [[divider num, den] per board], "light_sleep": bool,
                             "supply": [NTC supply uV per board], "ch": {Begin's current channels}}
  here -> host:             {"ready": N, "files": {role: {module: __file__}}}
  host -> here, per cycle:  {"dt": ms, "c": [true cell uV], "n": [true NTC pin uV or null],
                             "i": [s1 low, s1 high, s2 low, s2 high: uA or null (unplugged)],
                             "f": [[stuck pin uV|null, frozen cell uV|null, open NTC 0/1, short NTC 0/1,
                                    frozen NTC pin uV|null, cell offset uV]
                                   per board] (optional: when the faults changed), "sw": switch word,
                             "b": [button 0/1], "p": [powered 0/1], "k": [broken wire positions],
                             "set": [[name, value], ...] (optional settings changes through
                             the End board's services, applied in order; name "preset"
                             selects a chemistry preset),
                             "w": [[board index, reset cause]] (optional: those boards restart
                             now, before the cycle runs; see Pack.reset),
                             "app": [["o", id] | ["f", id, hex] | ["c", id]] (optional app sessions)}
  here -> host, per cycle:  {"d": [balance permille], "r": [charge, load], "x": "hex extout",
                             "sl": [light sleeps per board], "la": [characters lost asleep per board],
                             "st": {...End state, with "cell_status": the per-cell
                             CellStatus bits of its snapshot...} or null,
                             "msg": [refusal or null for each "set" pair],
                             "ao": [[id, hex answer]], "ac": [ids of sessions the board closed]}
Nothing here touches hardware; the module imports nothing at import time beyond the stdlib.
"""
import json
import sys

import sensors  # sim/sensors.py (this folder): the one sensor and fault model of both engines

_IMAGE_TOPS = ("core", "roles", "hal", "board", "boot", "main", "diag", "usb_app")


class VirtualHw:
    """One board's hw; ``sens``: its sim/sensors.BoardSensors (default: seed 0, a 2:1 divider);
    the host sets the true inputs ``cell_uv`` (cell), ``temp_uv`` (NTC pin), ``current_ua``."""

    def __init__(self, index, data_dir, sens=None, supply_uv=3300000, channels=None):
        self.index = index
        self.data_dir = data_dir
        self.sens = sens if sens is not None else sensors.BoardSensors(0, index)
        self.supply_uv = supply_uv
        self.channels = channels
        self.cell_uv = 3300000
        self.temp_uv = None
        self.current_ua = [0, 0, 0, 0]
        self.switches = 0
        self.button = False
        self.duty = 0
        self.has_cell_probe = True
        self.has_temp_probe = True  # the input self-test's load (sensors.PROBE_PERMILLE)
        self.led = False
        self.charge = False
        self.load = False
        self.charge_led = False
        self.load_led = False
        self.link_tx = None
        self.link_rx = None
        self.extout_tx = None
        self.ble = None
        self.cause = "power"        # what the board's reset-cause register says

    def read_cell_uv(self):
        return self.sens.cell_pin_uv(self.cell_uv)

    def set_cell_probe(self, on):
        self.sens.probe = bool(on)

    def set_temp_probe(self, on):
        self.sens.ntc_probe = bool(on)

    def read_temp_uv(self):
        return self.sens.ntc_pin_uv(self.temp_uv, self.supply_uv)

    def set_balance_duty(self, permille):
        self.duty = permille

    def set_led(self, on):
        self.led = on

    def button_down(self):
        return self.button

    def feed_watchdog(self):
        pass

    def reset_cause(self):
        return self.cause

    def read_switches(self):
        return self.switches

    def read_current_uv(self, sensor, high_range):
        return self.sens.current_pin_uv(self.current_ua[(sensor - 1) * 2 + (1 if high_range else 0)],
                                        high_range, self.channels)

    def set_charge_relay(self, on):
        self.charge = on

    def set_load_relay(self, on):
        self.load = on

    def set_charge_led(self, on):
        self.charge_led = on

    def set_load_led(self, on):
        self.load_led = on

    def safe(self):
        self.duty = 0
        self.led = False
        self.charge = self.load = False
        self.charge_led = self.load_led = False


class BoardClock:
    """The ``time`` module a board's Loop sees: the pack's virtual time (ms, us) and a
    ``sleep_ms`` that is never called here (the pack schedules the next wake-up itself)."""

    def __init__(self, sched):
        self.sched = sched

    def ticks_ms(self):
        return self.sched.now // 1000000

    def ticks_us(self):
        return self.sched.now // 1000

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def sleep_ms(self, ms):
        raise RuntimeError("the virtual pack schedules the wake-ups (Loop.step)")


class _SleepPin:
    IN = 1

    def __init__(self, pin=None):
        self.pin = pin

    def init(self, mode):
        pass


class SleepMachine:
    """What hal.sleep.LightSleep needs of ``machine``: the pack makes the board sleep itself."""
    Pin = _SleepPin

    @staticmethod
    def lightsleep(ms):
        pass

    @staticmethod
    def freq(f=None):
        return 125000000


class SleepEsp32:
    @staticmethod
    def wake_on_ext0(pin=None, level=0):
        pass


class Capture:
    def __init__(self):
        self.data = bytearray()

    def write(self, buf, n):
        for i in range(n):
            self.data.append(buf[i])
        return n

    def busy(self):
        return False


class CycleDef:
    """The image's board definition (board.py) with the run's cycle time on top."""

    def __init__(self, board, cycle_ms):
        self._board = board
        self.LINK_CYCLE_MS = cycle_ms

    def __getattr__(self, name):
        return getattr(self._board, name)


class Image:
    """One built image: its folder and, while none of its boards runs, its modules."""

    def __init__(self, role, folder):
        self.role = role
        self.folder = folder
        self.mods = {}


def _image_module(name):
    dot = name.find(".")
    return (name if dot < 0 else name[:dot]) in _IMAGE_TOPS


class Images:
    """Switches ``sys.modules`` / ``sys.path`` between the images' namespaces."""

    def __init__(self, folders):
        self.by_role = {}
        for role in folders:
            self.by_role[role] = Image(role, folders[role])
        self.active = None
        self.base_path = [p for p in sys.path if p == ".frozen"]

    def enter(self, img):
        cur = self.active
        if cur is img:
            return
        mods = sys.modules
        if cur is not None:
            for name in list(mods):
                if _image_module(name):
                    cur.mods[name] = mods.pop(name)
        for name in img.mods:
            mods[name] = img.mods[name]
        sys.path[:] = [img.folder] + self.base_path
        self.active = img

    def files(self):
        """{role: {module: __file__}} of every image's loaded modules."""
        cur = self.active
        if cur is not None:
            for name in list(sys.modules):
                if _image_module(name):
                    cur.mods[name] = sys.modules[name]
        out = {}  # type: dict
        for role in self.by_role:
            img = self.by_role[role]
            out[role] = {}
            for name in img.mods:
                out[role][name] = getattr(img.mods[name], "__file__", None)
        return out


class AppSessions:
    """App protocol sessions of host clients on the End board's handler (role.app)."""

    def __init__(self, app):
        self.app = app
        self.slots = {}        # host session id -> protocol slot
        self.out = {}          # host session id -> bytes written since the last reply
        self.closed = []

    def _writer(self, sid):
        out = self.out

        def write(data, n):            # copies at once: the protocol reuses its buffers
            buf = out.get(sid)
            if buf is not None:
                for i in range(n):
                    buf.append(data[i])
        return write

    def op(self, o):
        import binascii
        kind = o[0]
        sid = o[1]
        if kind == "o":
            self.out[sid] = bytearray()
            slot = self.app.open(self._writer(sid))
            if slot < 0:
                self.out[sid] = bytearray(b"ERR:too many connections\rNA\r")
                self.closed.append(sid)
            else:
                self.slots[sid] = slot
        elif kind == "f" and sid in self.slots:
            data = binascii.unhexlify(o[2])
            self.app.feed(data, len(data), self.slots[sid])
        elif kind == "c" and sid in self.slots:
            self.app.close(self.slots.pop(sid))

    def take(self):
        answers = []
        for sid in list(self.out):
            buf = self.out[sid]
            if buf:
                answers.append([sid, "".join("%02x" % b for b in buf)])
                self.out[sid] = bytearray()
        closed = self.closed
        self.closed = []
        for sid in closed:
            self.out.pop(sid, None)
        return answers, closed

    def end(self):
        """The End board restarted or lost power: every session is gone."""
        for sid in self.slots:
            self.closed.append(sid)
        self.slots = {}


class Pack:
    def __init__(self, cfg):
        self.n = cfg["cells"]
        self.dirs = cfg["dirs"]
        self.cycle_ms = cfg.get("cycle_ms", 1000)
        self.images = Images(cfg["images"])
        self.roles_of = ["begin"] + ["between"] * (self.n - 2) + ["end"]
        begin_img = self.images.by_role["begin"]
        self.images.enter(begin_img)
        sys.path.append(cfg["wire"])
        import wire  # type: ignore[import-not-found]  # sim/wire.py: the simulated wire itself
        sys.path.remove(cfg["wire"])
        import board  # type: ignore[import-not-found]  # the Begin image's board definition
        self.wire = wire
        self.sched = wire.Scheduler()
        baud = getattr(board, "LINK_BAUD", 9600)
        lines = cfg.get("lines")     # sim/roles_chain.line_params: byte errors, clock offsets
        self.wires = [wire.Wire(self.sched, baud, line=self._line(wire, baud, lines[k]) if lines else None)
                      for k in range(self.n - 1)]
        seed = cfg.get("seed", 0)
        div = cfg.get("div") or [[2, 1]] * self.n
        supply = cfg.get("supply") or [3300000] * self.n
        self.hws = [VirtualHw(k, self.dirs[k], sensors.BoardSensors(seed, k, div[k][0], div[k][1]), supply[k],
                              cfg.get("ch")) for k in range(self.n)]
        for k in range(self.n):
            if cfg.get("c"):
                self.hws[k].cell_uv = cfg["c"][k]
            if cfg.get("n"):
                self.hws[k].temp_uv = cfg["n"][k]
        self.capture = Capture()
        self.hws[-1].extout_tx = self.capture
        self.roles = [None] * self.n
        self.loops = [None] * self.n
        self.clocks = [BoardClock(self.sched) for _ in range(self.n)]
        self._gen = [0] * self.n        # a board's wake-up chain (a new one per restart)
        self._seq = [0] * self.n        # its current wake-up (a light sleep's end replaces it)
        self.wakes = [0] * self.n
        self.light = bool(cfg.get("light_sleep", False))
        self.sleepers = [None] * self.n
        self.light_sleeps = [0] * self.n
        self.lost_asleep = [0] * self.n
        self.early_wakes = [0] * self.n
        self._asleep_until = [0] * self.n
        self._deaf_until = [0] * self.n
        self._wake_on_link = [False] * self.n
        self.on = [True] * self.n
        self.broken = []
        self.sessions = None
        self._settings = None
        seed = 12345
        cyc_ns = self.cycle_ms * 1000000
        for k in range(self.n):
            self._make(k)
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            self._start(k, 0 if k == 0 else 1000 + seed % cyc_ns)

    def _enter(self, k):
        self.images.enter(self.images.by_role[self.roles_of[k]])

    def _make(self, k):
        """Boot board k from its image: ``roles.<role>.make(hw, board)`` and the image's
        ``hal.loop.Loop`` around it, as hal/loop.py's run() does."""
        role_name = self.roles_of[k]
        self._enter(k)
        __import__("board")
        __import__("roles." + role_name)
        __import__("hal.loop")
        __import__("hal.sleep")
        board = sys.modules["board"]
        role_mod = sys.modules["roles." + role_name]
        loop_mod = sys.modules["hal.loop"]
        sleep_mod = sys.modules["hal.sleep"]
        hw = self.hws[k]
        if k < self.n - 1:
            hw.link_tx = self.wires[k]
        # an interrupt-driven receiver (PIO, soft) runs its handler as characters arrive;
        # a polled one (UART) is read by the loop's wake-ups only
        irq = getattr(board, "LINK_BACKEND", "pio") in ("pio", "soft")
        if k > 0:
            rx = self.wires[k - 1].rx
            rx.q = []
            rx.head = 0
            rx.interrupt_driven = irq
            hw.link_rx = rx
        bd = CycleDef(board, self.cycle_ms)
        role = role_mod.make(hw, bd)
        self.roles[k] = role
        sl = sleep_mod.make(bd, hw, SleepMachine, SleepEsp32) if self.light else None
        self.sleepers[k] = sl
        self._wake_on_link[k] = bool(getattr(board, "LIGHT_SLEEP_WAKE_ON_LINK", False))
        self._asleep_until[k] = self._deaf_until[k] = 0
        self.loops[k] = loop_mod.Loop(role, bd, hw, None, self.clocks[k], sl)
        if k > 0:
            self.wires[k - 1].receiver = self._receiver(k, role, irq)
        if k == self.n - 1:
            if self.sessions is not None:
                self.sessions.end()
                closed = self.sessions.closed
            else:
                closed = []
            self.sessions = AppSessions(role.app)
            self.sessions.closed = closed

    def _receiver(self, k, role, irq):
        """Characters reached board k: lost while it light-sleeps (or wakes up); else an
        interrupt-driven receiver's handler runs now, a polled one waits for the loop."""
        poll = role.poll

        def on_chars():
            if self._deaf_until[k] > self.sched.now:
                self._deaf(k)
                return
            if irq:
                self._enter(k)
                while poll():
                    pass
        return on_chars

    def _deaf(self, k):
        """Board k is asleep or waking up: what reached it is lost (the GAP marks stay: the
        receiver's gap timer runs on the tick counter); with LIGHT_SLEEP_WAKE_ON_LINK the first
        character ends the sleep (awake the wake-up time later, deaf until then)."""
        rx = self.wires[k - 1].rx
        q = rx.q
        keep = [v for v in q[rx.head:] if v < 0]
        lost = len(q) - rx.head - len(keep)
        self.lost_asleep[k] += lost
        del q[rx.head:]
        q.extend(keep)
        now = self.sched.now
        if lost and self._wake_on_link[k] and now < self._asleep_until[k]:
            wake_ns = self.sleepers[k].wake_ms * 1000000
            self._asleep_until[k] = now
            self._deaf_until[k] = now + wake_ns
            self.early_wakes[k] += 1
            self._seq[k] += 1
            self.sched.at(now + wake_ns, self._wake, (k, self._gen[k], self._seq[k]))

    def _start(self, k, at_ns):
        """Board k's loop: its first wake-up at at_ns (a new chain; one still pending is void)."""
        self._gen[k] += 1
        self._seq[k] += 1
        self.sched.at(at_ns, self._wake, (k, self._gen[k], self._seq[k]))

    def _wake(self, arg):
        """One wake-up of board k: its Loop.step at the board's ms; then its light sleep when the
        board's sleeper takes the budget (deaf until awake again), else the wait it returned."""
        k, gen, seq = arg
        if gen != self._gen[k] or seq != self._seq[k] or not self.on[k] or self.loops[k] is None:
            return
        self._enter(k)
        self.wakes[k] += 1
        lp = self.loops[k]
        now = self.sched.now
        wait = lp.step(now // 1000000)
        light = lp.light_ms
        if wait > 0 and light:
            r = lp.light(light)         # hal.sleep.LightSleep's checks: it may decline
            if r < 0:
                end = now + light * 1000000
                self._asleep_until[k] = end
                self._deaf_until[k] = end + self.sleepers[k].wake_ms * 1000000
                self.light_sleeps[k] += 1
                self._seq[k] += 1
                self.sched.at(self._deaf_until[k], self._wake, (k, gen, self._seq[k]))
                return
            if r < wait:
                wait = r
        if wait < 1:
            wait = 1            # no time passes inside a call here: at least the next ms
        self.sched.at(self.sched.now + wait * 1000000, self._wake, arg)

    def power(self, k, on):
        if on == self.on[k]:
            return
        self.on[k] = on
        if not on:
            self.hws[k].safe()      # no power: every output drops
            if k > 0:
                self.wires[k - 1].receiver = None
            self.roles[k] = None
            self.loops[k] = None
            if k == self.n - 1 and self.sessions is not None:
                self.sessions.end()
        else:
            self.hws[k].cause = "power"
            self._make(k)
            self._start(k, self.sched.now)
        self._wires()

    def reset(self, k, cause):
        """Board k restarts at once (e.g. its watchdog fired): every output to its safe level
        first, what it was receiving is lost, then its role is built again by ``make`` from its
        image and data folder (settings, calibration, saved state) with ``reset_cause()`` =
        cause, and its loop starts again now. It keeps its outgoing wire; a board without power
        stays off."""
        if not self.on[k]:
            return
        hw = self.hws[k]
        hw.safe()
        if k > 0:
            self.wires[k - 1].receiver = None
        self.roles[k] = None
        self.loops[k] = None
        hw.cause = cause
        self._make(k)
        self._start(k, self.sched.now)

    def _wires(self):
        for k in range(self.n - 1):
            self.wires[k].broken = (not self.on[k]) or ((k + 1) in self.broken)

    def apply_setting(self, name, value):
        end = self.roles[-1]
        if end is None:
            return "End board has no power"
        self._enter(self.n - 1)
        if name == "preset":
            return end.services.select_preset(value)
        return end.services.apply_setting(name, value)

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
        self.hws[0].current_ua = req["i"]
        f = req.get("f")
        if f:
            for k in range(self.n):
                s = self.hws[k].sens
                s.stuck_adc_uv, s.frozen_uv = f[k][0], f[k][1]
                s.open_ntc, s.short_ntc = bool(f[k][2]), bool(f[k][3])
                s.frozen_ntc_uv, s.cell_offset_uv = f[k][4], f[k][5]
        self.hws[0].switches = req["sw"]
        p = req.get("p")
        if p:
            for k in range(self.n):
                self.power(k, bool(p[k]))
        for w in req.get("w", ()):
            self.reset(w[0], w[1])
        k_list = req.get("k", [])
        if k_list != self.broken:
            self.broken = k_list
            self._wires()
        msg = []
        for name, value in req.get("set", ()):
            msg.append(self.apply_setting(name, value))
        ops = req.get("app")
        if ops and self.roles[-1] is not None:
            self._enter(self.n - 1)
            for o in ops:
                self.sessions.op(o)
        self.sched.run_until(self.sched.now + req["dt"] * 1000000)
        end_hw = self.hws[-1]
        hexed = "".join("%02x" % b for b in self.capture.data)
        self.capture.data = bytearray()
        answers, closed = self.sessions.take() if self.sessions is not None else ([], [])
        return {"d": [h.duty for h in self.hws], "r": [1 if end_hw.charge else 0, 1 if end_hw.load else 0],
                "x": hexed, "msg": msg, "st": self.state(), "ao": answers, "ac": closed,
                "sl": self.light_sleeps, "la": self.lost_asleep}

    @staticmethod
    def _line(wire, baud, p):
        """sim/roles_chain.make_line, here (that module needs numpy)."""
        tx_clock, rx_clock, ber, seed, tx_inv, rx_inv, polarity, on_ns, off_ns, stop_at = p
        opto = wire.OptoStage(on_ns, off_ns) if on_ns is not None else None
        return wire.Line(baud, tx_inv, rx_inv, opto, tx_clock, rx_clock, ber, seed, polarity,
                         tuple(stop_at) if isinstance(stop_at, list) else stop_at)

    def state(self):
        end = self.roles[-1]
        if end is None:
            return None
        snap = end.snap
        brain = end.brain
        fresh = snap.valid and snap.comm_ok
        return {"settings": end.settings.to_dict(),
                "cell_mv": [snap.cell_mv[i] if fresh else 0 for i in range(self.n)],
                "cell_status": [snap.cell_status[i] for i in range(self.n)],
                "soc_c": brain.soc_c, "soc_calibrated": brain.soc_calibrated, "alarms": brain.alarms,
                "comm_ok": bool(snap.comm_ok), "current_ma": brain.current_ma,
                "break_position": brain.break_position,
                "reset_position": getattr(brain, "reset_position", 0), "link_good": snap.link_good}


def main():
    line = sys.stdin.readline()
    try:
        pack = Pack(json.loads(line))
        reply = {"ready": pack.n, "files": pack.images.files()}
    except Exception as e:  # an image that does not boot: tell the host why
        if hasattr(sys, "print_exception"):
            sys.print_exception(e, sys.stderr)  # type: ignore[arg-type]
        reply = {"error": "boot: %s: %s" % (type(e).__name__, e)}
    sys.stdout.write(json.dumps(reply) + "\n")
    if "error" in reply:
        return
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
