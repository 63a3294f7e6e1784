"""The real role objects (firmware/roles/{begin,between,end}.py) on the virtual hardware, joined
by sim/wire.py in virtual time: every board runs ``cycle`` at its own phase each cycle and
``poll`` whenever a character reaches it, exactly as the link helper's chain tests do, but with
the real CellBoard, SensorPair and PackBrain reading the pack model.

Every role is built with plain ``make(hw, board_def)`` as hal/loop.py builds it on a board, so the
End board brings its own services (roles/end_app.py: settings file, app protocol, extended
output, state saving, 5 s password reset); settings changes go through them."""
from sim import paths  # noqa: F401
from sim import wire as wire_mod


class BurstWire(wire_mod.Wire):
    """sim/wire.py's Wire with one scheduler event per burst instead of per character: the
    characters written back to back are handed to the receiver together when the first one's
    stop bit ends (the receiver's poll drains them in one call). Line occupancy (bits_busy,
    free_at) is counted exactly as in Wire; only the delivery of a burst's later characters is
    early by at most the burst length. Several times faster for long chains."""

    def __init__(self, sched, baud=9600, proc_bits=2, gap_bits=30):
        wire_mod.Wire.__init__(self, sched, baud, proc_bits, gap_bits)
        self._batch = []
        self._flush_due = False

    def write_byte(self, b):
        now = self.sched.now
        start = now + self.proc_ns
        if start < self.free_at:
            start = self.free_at
        end = start + self.char_ns
        self.free_at = end
        self.bits_busy += 10
        self.chars += 1
        if not self.broken:
            self._batch.append(b)
            if not self._flush_due:
                self._flush_due = True
                self.sched.at(end, self._flush)
        return True

    def _flush(self, _arg=None):
        self._flush_due = False
        batch = self._batch
        self._batch = []
        q = self.rx.q
        for b in batch:
            if self.corrupt is not None and self._since_gap == self.corrupt[0]:
                b ^= self.corrupt[1]
            self._since_gap += 1
            q.append(b)
        self._delivered += 1
        at = self.free_at if self.free_at > self.sched.now else self.sched.now
        self.sched.at(at + self.gap_ns, self._gap_check, self._delivered)
        if self.receiver is not None:
            self.receiver()


class RolesChain:
    link = "wire"

    def __init__(self, sim):
        self.sim = sim
        self.n = len(sim.boards)
        self.sched = wire_mod.Scheduler()
        baud = getattr(sim.board_def, "LINK_BAUD", 9600)
        self.wires = [BurstWire(self.sched, baud) for _ in range(self.n - 1)]
        self.roles = [None] * self.n
        self.on = [True] * self.n
        self.broken_after = set()
        self.cycle_ns = sim.cycle_ms * 1000000
        self._bd = _CycleDef(sim.board_def, sim.cycle_ms)

    def boot(self):
        s = 12345
        for k in range(self.n):
            self._make(k)
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            phase = 0 if k == 0 else 1000 + s % self.cycle_ns
            self.sched.at(phase, self._cycle, k)

    def _make(self, k):
        from roles import begin, between, end
        hw = self.sim.boards[k]
        if k < self.n - 1:
            hw.link_tx = self.wires[k]
        if k > 0:
            hw.link_rx = self.wires[k - 1].rx
            self.wires[k - 1].rx.q = []
            self.wires[k - 1].rx.head = 0
        if k == 0:
            role = begin.make(hw, self._bd)
        elif k < self.n - 1:
            role = between.make(hw, self._bd)
        else:
            role = end.make(hw, self._bd)
        self.roles[k] = role
        if k > 0:
            self.wires[k - 1].receiver = _drain(role)

    def _cycle(self, k):
        self.sched.at(self.sched.now + self.cycle_ns, self._cycle, k)
        if not self.on[k]:
            return
        role = self.roles[k]
        role.tick(self.sim.cycle_ms)
        role.cycle(self.sim.cycle_ms)
        if k > 0:
            role.poll()

    def cycle(self, dt_ms):
        self.sched.run_until(self.sched.now + dt_ms * 1000000)

    def power(self, k, on):
        if not on and self.on[k]:
            self.on[k] = False
            self.sim.boards[k].power_off()
            if k > 0:
                self.wires[k - 1].receiver = None
            if k < self.n - 1:
                self.wires[k].broken = True
            self.roles[k] = None
        elif on and not self.on[k]:
            self.on[k] = True
            self.sim.boards[k].cause = "power"
            if k < self.n - 1:
                self.wires[k].broken = (k + 1) in self.broken_after
            self._make(k)

    def reset(self, k, cause="watchdog"):
        """Board k restarts at once (a watchdog reset): every output to its safe level first,
        what it was receiving is lost, then the role is built again by ``make`` from the board's
        data folder (settings, calibration, saved state) with ``hw.reset_cause()`` = cause.
        A board without power stays off."""
        if not self.on[k]:
            return
        hw = self.sim.boards[k]
        hw.safe()
        if k > 0:
            self.wires[k - 1].receiver = None
        self.roles[k] = None
        hw.cause = cause
        self._make(k)

    def link_break(self, position, broken):
        (self.broken_after.add if broken else self.broken_after.discard)(position)
        if self.on[position - 1]:
            self.wires[position - 1].broken = broken

    def end_role(self):
        """The End board's role object (None while it has no power)."""
        return self.roles[-1]

    def apply_setting(self, name, value):
        """A settings change through the End board's own validated, atomic path (as the app
        does): ``preset`` selects a chemistry preset, anything else one setting."""
        end = self.roles[-1]
        if end is None:
            return "End board has no power"
        if name == "preset":
            return end.services.select_preset(value)
        return end.services.apply_setting(name, value)


def _drain(role):
    poll = role.poll

    def drain():
        while poll():
            pass
    return drain


class _CycleDef:
    """The board definition with the scenario's cycle time (LINK_CYCLE_MS) on top."""

    def __init__(self, base, cycle_ms):
        self._base = base
        self.LINK_CYCLE_MS = cycle_ms

    def __getattr__(self, name):
        return getattr(self._base, name)
