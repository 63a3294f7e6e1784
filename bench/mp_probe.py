"""Memory and CPU probe, run under the MicroPython Unix port (not imported by ``python -m bench``):

    .venv/bin/micropython bench/mp_probe.py ROLE CYCLES DATA_DIR_PREFIX      (cwd = repo root)

Builds a three-board chain (Begin -> Between -> End) of the real role objects
(``roles.<role>.make(hw, board_def)``) on fake hardware that allocates nothing: the link is a
preallocated byte ring per hop (characters arrive at once, an idle gap is reported after the
last one, as a real receiver does). ROLE is the board being measured; the two others only feed
it traffic. Prints one JSON line:

  heap_after_boot_bytes  gc.mem_alloc() after importing ROLE's modules, building it and a
                         gc.collect(), minus the same figure before (the interpreter and this
                         probe itself are not counted)
  alloc_per_cycle_bytes  bytes allocated by ROLE's tick + cycle + poll calls per cycle, averaged
                         over CYCLES steady-state cycles after a warm-up (gc.mem_alloc deltas
                         around those calls only, automatic collection off meanwhile)
  heap_lock_ok           True when CYCLES cycles of ROLE ran with micropython.heap_lock() held
                         around its calls; else the first failing call and its traceback
  cpu_us_per_cycle       time.ticks_us() around ROLE's calls, mean over CYCLES cycles
  wake_calls             calls made per cycle (tick, cycle, poll until drained)
"""
import gc
import io
import json
import sys
import time

import micropython

sys.path.insert(0, "firmware")
sys.path.insert(0, ".")

ROLE = sys.argv[1] if len(sys.argv) > 1 else "between"
CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 200
DATA = sys.argv[3] if len(sys.argv) > 3 else "/tmp/cellchain-probe"
LOCATE = len(sys.argv) > 4 and sys.argv[4] == "locate"
WARM = 100             # cycles before steady state (relays closed, first state save done)
CYCLE_MS = 1000
_RING = 1024           # > the longest frame (198 characters) and its gap markers


class Ring:
    """One hop of the link: the sender's ``link_tx`` and the receiver's ``link_rx``."""

    def __init__(self):
        self.buf = bytearray(_RING)
        self.head = 0
        self.tail = 0
        self.gap_due = False
        self.chars = 0

    def write_byte(self, b):
        self.buf[self.tail] = b
        self.tail = (self.tail + 1) % _RING
        self.chars += 1
        return True

    def write(self, buf, n):
        for i in range(n):
            self.write_byte(buf[i])
        return n

    def pending(self):
        return 0

    def read(self):
        if self.head != self.tail:
            v = self.buf[self.head]
            self.head = (self.head + 1) % _RING
            self.gap_due = True
            return v
        if self.gap_due:
            self.gap_due = False
            return -3          # codec.GAP
        return -1              # codec.NONE


class Sink:
    """The End board's extended-output transmitter: counts, keeps nothing."""

    def __init__(self):
        self.bytes = 0

    def write(self, buf, n=None):
        self.bytes += len(buf) if n is None else n
        return n

    def busy(self):
        return False


def _drain(role):
    calls = 0
    while True:
        calls += 1
        if not role.poll():
            return calls


def main():
    sys.path.append("sim")
    import fw          # sim/fw.py: the host tools' one door into core
    options = fw.core("options")
    import board_defs.pico_w as bd
    bd.LINK_CYCLE_MS = CYCLE_MS
    sw = options.word_for(options.range_code_for_cells(3), 3500)
    rings = (Ring(), Ring())
    hws = []
    from mp_board import VirtualHw   # the virtual pack's board hardware, fixed readings
    for k in range(3):
        hw = VirtualHw(k, DATA + "/board%d" % (k + 1))
        hw.switches = sw           # 3.3 V cell (2:1 divider), currents at zero: the defaults
        hw.temp_uv = 1650000       # 25 degC NTC (10k/10k: half the supply)
        if k < 2:
            hw.link_tx = rings[k]
        if k > 0:
            hw.link_rx = rings[k - 1]
        hws.append(hw)
    hws[2].extout_tx = Sink()
    target = ("begin", "between", "end").index(ROLE)
    roles = [None, None, None]

    def build(k):
        name = ("begin", "between", "end")[k]
        mod = __import__("roles." + name, None, None, ["make"])
        roles[k] = mod.make(hws[k], bd)

    gc.collect()
    base = gc.mem_alloc()
    build(target)
    gc.collect()
    heap = gc.mem_alloc() - base
    for k in range(3):
        if roles[k] is None:
            build(k)
    gc.collect()

    me = roles[target]
    counts = [0]           # calls ROLE got in the last cycle

    def other(k):
        r = roles[k]
        r.tick(CYCLE_MS)
        r.cycle(CYCLE_MS)
        _drain(r)               # Begin: the frame its cycle built goes out from poll()

    def mine():
        me.tick(CYCLE_MS)
        me.cycle(CYCLE_MS)
        c = 2 + _drain(me)
        counts[0] = c

    def run_cycle(measure):
        """Begin, then Between, then End; measure(fn) runs the target's share."""
        for k in range(3):
            if k == target:
                measure(mine)
            else:
                other(k)

    total = [0]
    events = []            # (cycle, bytes) of cycles in which ROLE allocated (first 8)
    cyc = [0]

    def by_alloc(fn):
        a = gc.mem_alloc()
        fn()
        d = gc.mem_alloc() - a
        if cyc[0] >= WARM:
            total[0] += d
        if d and len(events) < 8:
            events.append((cyc[0], d))

    failure = [None]

    def locked(fn):
        if failure[0] is not None:
            fn()
            return
        try:                   # (an except clause inside the locked region is not reached)
            micropython.heap_lock()
            try:
                fn()
            finally:
                micropython.heap_unlock()
        except MemoryError as e:
            s = io.StringIO()
            sys.print_exception(e, s)
            failure[0] = "cycle %d: %s" % (cyc[0], s.getvalue())

    spent = [0]

    def by_time(fn):
        t0 = time.ticks_us()
        fn()
        spent[0] += time.ticks_diff(time.ticks_us(), t0)

    if LOCATE:
        # heap_lock from the first cycle: the first allocating call and its traceback
        for i in range(WARM + CYCLES):
            cyc[0] = i
            run_cycle(locked)
    else:
        gc.disable()           # a collection inside a call would hide its allocation
        for i in range(WARM + CYCLES):
            cyc[0] = i
            run_cycle(by_alloc)
            if i % 50 == 49:
                gc.collect()
        gc.enable()
        gc.collect()
        for _ in range(CYCLES):
            run_cycle(by_time)
        gc.collect()
        for i in range(CYCLES):
            cyc[0] = WARM + 2 * CYCLES + i
            run_cycle(locked)

    relays = [hws[2].charge, hws[2].load]
    snap = roles[2].snap
    out = {
        "role": ROLE,
        "impl": sys.implementation.name,
        "cycles": CYCLES,
        "heap_after_boot_bytes": heap,
        "alloc_per_cycle_bytes": total[0] / CYCLES,
        "alloc_events": events,
        "heap_lock_ok": failure[0] is None,
        "heap_lock_error": failure[0],
        "cpu_us_per_cycle": spent[0] / CYCLES if not LOCATE else None,
        "wake_calls": counts[0],
        "end_comm_ok": bool(snap.comm_ok),
        "end_relays": relays,
    }
    print(json.dumps(out))


if sys.implementation.name == "micropython":
    main()
