"""The End board's alarm/event log: what tripped, when, with the pack's values at that moment.

A fixed ring of ``EVENT_SLOTS`` entries in preallocated arrays (no allocation per cycle); the
oldest entry is overwritten. ``update(snap, brain)`` once per cycle after the brain compares
the alarm bits and relay states with the previous cycle and records every change:

    kind ALARM_ON / ALARM_OFF  code = the alarm's bit number (core/alarms.py, bit 0 = 0x0001)
    kind RELAY                 code = CHARGE_OFF, CHARGE_ON, LOAD_OFF or LOAD_ON

each with the brain's uptime (s), the lowest and highest cell (mV), the battery current (mA,
+ = charging), SoC (0.01 %) and the chain's break position (a comm_lost entry's follows the
chain's report while the alarm lasts: End blames its own input until the board behind the break
reports). Every entry made while comm_lost lasts carries that same position (issue 22: one
break, one position - never "break at 3" then "break at 4").

Kept in flash (issue 22: the log is needed after the reboot that follows a fault): ``values()``
gives the held entries as one bounded record (core.store kind ``events``, at most
EVENT_SLOTS entries, about 1.3 kB) and ``restore(values)`` loads it at boot and adds a BOOT
entry, so entries before it are from an earlier run (uptime counts from each boot). ``dirty``
tells the End role a save is due; it writes in the post-frame window, rate-limited
(roles/end_app.py). Read with the app protocol's ``EV?`` (docs/ble-protocol.md),
``cellchain events`` and the dashboard.
"""
from array import array

from micropython import const

EVENT_SLOTS = const(32)
ALARM_ON = const(1)
ALARM_OFF = const(2)
RELAY = const(3)
BOOT = const(4)             # the board started (entries before it are from an earlier run)
KIND_NAMES = ("", "alarm", "cleared", "relay", "boot")
KIND = "events"             # core.store record kind
VERSION = const(1)
CHARGE_OFF = const(0)
CHARGE_ON = const(1)
LOAD_OFF = const(2)
LOAD_ON = const(3)
RELAY_NAMES = ("charge_off", "charge_on", "load_off", "load_on")
_ALARM_BITS = const(17)    # core/alarms.py uses bits 0..16
_COMM_LOST_BIT = const(5)  # alarms.COMM_LOST = 0x0020


class EventLog:
    def __init__(self, slots=EVENT_SLOTS):
        self.slots = slots
        self.t_s = array("l", [0] * slots)
        self.kind = bytearray(slots)
        self.code = bytearray(slots)
        self.min_mv = array("l", [0] * slots)
        self.max_mv = array("l", [0] * slots)
        self.current_ma = array("l", [0] * slots)
        self.soc_c = array("l", [0] * slots)
        self.break_pos = array("l", [0] * slots)
        self.count = 0          # entries held (<= slots)
        self.total = 0          # entries ever recorded (the newest has number total)
        self._next = 0
        self._alarms = 0
        self._charge = False
        self._load = False
        self._lost_slot = -1    # slot of the comm_lost entry while that alarm lasts
        self.dirty = False      # entries not yet in flash

    def update(self, snap, brain):
        """Record what changed since the previous cycle (allocation-free)."""
        mask = brain.alarms
        charge = bool(brain.charge_allowed)
        load = bool(brain.load_allowed)
        changed = mask ^ self._alarms
        lost = self._lost_slot
        if lost >= 0 and not changed & (1 << _COMM_LOST_BIT):
            # the break position follows the chain's report while comm_lost lasts: End blames
            # its own input first, the board behind the break reports a frame later. Every
            # entry since the comm_lost one is about the same break: one position for all.
            pos = brain.break_position
            if pos != self.break_pos[lost]:
                i = lost
                while True:
                    self.break_pos[i] = pos
                    i = i + 1 if i + 1 < self.slots else 0
                    if i == self._next:
                        break
                self.dirty = True
        if changed:
            for bit in range(_ALARM_BITS):
                if changed & (1 << bit):
                    on = mask & (1 << bit)
                    if bit == _COMM_LOST_BIT:
                        self._lost_slot = self._next if on else -1
                    self._add(snap, brain, ALARM_ON if on else ALARM_OFF, bit)
            self._alarms = mask
        if charge != self._charge:
            self._add(snap, brain, RELAY, CHARGE_ON if charge else CHARGE_OFF)
            self._charge = charge
        if load != self._load:
            self._add(snap, brain, RELAY, LOAD_ON if load else LOAD_OFF)
            self._load = load

    def _add(self, snap, brain, kind, code):
        i = self._next
        if i == self._lost_slot and not (kind == ALARM_ON and code == _COMM_LOST_BIT):
            self._lost_slot = -1            # the ring wrapped over the open comm_lost entry
        self.t_s[i] = brain.uptime_s
        self.kind[i] = kind
        self.code[i] = code
        self.min_mv[i] = snap.min_mv
        self.max_mv[i] = snap.max_mv
        self.current_ma[i] = brain.current_ma
        self.soc_c[i] = brain.soc_c
        lost = self._lost_slot
        self.break_pos[i] = self.break_pos[lost] if lost >= 0 and lost != i else brain.break_position
        self._next = i + 1 if i + 1 < self.slots else 0
        self.dirty = True
        if self.count < self.slots:
            self.count += 1
        self.total += 1

    def values(self):
        """The held entries, oldest first, as a store record's values (allocates: called
        only when a save is due, never per cycle)."""
        rows = []
        for n in range(self.count):
            i = self.index(n)
            rows.append([self.t_s[i], self.kind[i], self.code[i], self.min_mv[i], self.max_mv[i],
                         self.current_ma[i], self.soc_c[i], self.break_pos[i]])
        return {"total": self.total, "e": rows}

    def restore(self, values, uptime_s=0):
        """Load a saved log at boot (bad rows are skipped, never raised), then add a BOOT
        entry. Returns the number of entries restored."""
        got = 0
        try:
            rows = values.get("e", [])
            total = int(values.get("total", 0))
        except (AttributeError, TypeError, ValueError):
            rows, total = [], 0
        start = len(rows) - self.slots if len(rows) > self.slots else 0
        for r in rows[start:]:
            try:
                t, kind, code, lo, hi, cur, soc, brk = (int(x) for x in r)
            except (TypeError, ValueError):
                continue
            if not 0 < kind < len(KIND_NAMES) or not 0 <= code < 256:
                continue
            i = self._next
            self.t_s[i], self.kind[i], self.code[i] = t, kind, code
            self.min_mv[i], self.max_mv[i], self.current_ma[i] = lo, hi, cur
            self.soc_c[i], self.break_pos[i] = soc, brk
            self._next = i + 1 if i + 1 < self.slots else 0
            if self.count < self.slots:
                self.count += 1
            got += 1
        self.total = total if total >= got else got
        i = self._next
        self.t_s[i] = uptime_s
        self.kind[i] = BOOT
        self.code[i] = 0
        self.min_mv[i] = self.max_mv[i] = self.current_ma[i] = self.soc_c[i] = self.break_pos[i] = 0
        self._next = i + 1 if i + 1 < self.slots else 0
        if self.count < self.slots:
            self.count += 1
        self.total += 1
        self.dirty = False      # the boot entry alone is not worth a write: it goes with the next
        return got

    def index(self, n):
        """Slot of the n-th held entry, oldest first (0 <= n < count)."""
        first = self._next - self.count
        if first < 0:
            first += self.slots
        i = first + n
        return i - self.slots if i >= self.slots else i


def break_text(position):
    """Where a break is, as a person checks it (issue 22: a dead board is not always a wire).
    ``position`` is the first board whose input failed; board ``position - 1`` sent nothing
    it could read: that board (dead, unpowered) or the wire after it."""
    if position <= 0:
        return "intact"
    if position == 1:
        return "board 1 (Begin)"
    return "board %d or the wire after it (to board %d)" % (position - 1, position)


def code_name(kind, code):
    """The alarm's name or the relay change (for the app reply and logs; allocates)."""
    if kind == RELAY:
        return RELAY_NAMES[code] if code < len(RELAY_NAMES) else "relay_%d" % code
    if kind == BOOT:
        return "board_start"
    from core import alarms
    for bit, name in alarms.NAMES:
        if bit == 1 << code:
            return name
    return "bit_%d" % code
