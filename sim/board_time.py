"""Board time: what a role call costs on the board, for the virtual pack (docs/virtual-pack.md).

The virtual pack runs the real role code on the host, where a call takes far less time than on
a board. ``BoardTime`` turns each call into the time the board spends in it:

* ``mode "zero"`` (default): calls take no time (the idealised pack; bit-for-bit reproducible);
* ``mode "fixed"``: costs from the scenario (``cycle_ms`` per role, charged to the call that
  measures the cell - ``cycle()`` today, wherever the firmware moves that work - and
  ``poll_us_per_char`` for the others): reproducible, for tests that need a given cost (a 9 ms
  cycle);
* ``mode "measured"``: the call is timed on the host (CPU time of this thread,
  ``time.thread_time_ns``, so other processes on the machine do not count; the host's garbage
  collector runs between simulation steps only) and multiplied by the board target's factor:
  board time per host time. The timer's own cost (an empty call timed the same way, and one
  clock read per byte stamped inside a call) is taken off first: the board does not pay for
  the host's clock. Calls are grouped by kind (role, cycle or poll, characters handled, link
  events raised, bytes sent, flash writes); a kind costs the median of its host timings
  ``WARMUP`` .. ``WARMUP + SAMPLES`` (the first calls of a kind run cold code on the host:
  CPython specialises a code path after its first executions, a board has no such warm-up),
  so host jitter is not charged as board time either. The factor is ``factor`` from the
  scenario, else ``REF_BOARD_NS`` / the host time of a fixed workload (sim/reference_work.py,
  ``calibrate``): REF_BOARD_NS is what that workload stands for on an RP2040 at 125 MHz,
  found once from the firmware the chip figures were measured on (tools/board_factor.py), so
  the factor does not depend on the firmware under test. The workload is timed again every
  REFRESH_S simulated seconds and host times are scaled by the change: other load on a shared
  machine makes the host slower, not the boards. Not bit-for-bit reproducible (host timing
  varies by a few per cent); the bench records the factor it used, and a run with that factor
  given again reproduces it to that jitter. Host time has a bias that no factor removes: a
  short call (one received character) runs with cold caches between the other boards' calls,
  2-3x slower than the same code in a loop, so short calls are overcharged.
* ``mode "counted"`` (what ``make bench`` uses): a call costs the bytecode instructions it
  executes in firmware code (sim/opcount.py, sys.settrace opcode events) x ``ns_per_instr``
  (NS_PER_INSTR: the chip's ms per cycle over the instructions of the same probe and firmware,
  tools/board_factor.py; the three roles give 1096-1283 ns, +-8 %). A call into code outside
  firmware/ (the virtual hardware) counts as a native call (opcount.FOREIGN instructions), the
  virtual link ends as the PIO HAL methods they stand for (HAL_INSTR). Only the first calls of
  each kind are counted (counting is slow); a kind costs the median of its first SAMPLES
  counts. Independent of the host's speed, load and caches, and reproducible bit for bit; what
  it leaves out is that MicroPython's bytecodes do not all cost the same on the chip.

Besides the call costs: ``irq_latency_us`` (a received character to the scheduled handler on an
interrupt-driven receiver), ``flash_erase_ms`` per settings/state write (the board stalls with
interrupts off; an RP2040 PIO RX FIFO holds ``rx_fifo_chars``), and the loop's poll interval for
polled receivers (the role's ``wake_in_ms``, else ``LOOP_POLL_MS``).
"""
import time

from sim.scenario import ScenarioError

# per cycle (tick + cycle + poll until drained) on the chip, RP2040 at 125 MHz, MicroPython 1.28,
# bench/mp_probe.py's three-board chain (issue 12) with the firmware of commit 5c2a00c:
# begin / between / end. The cycle-time names of fixed mode ("cycle_ms") use the same roles.
CHIP_MS_PER_CYCLE = {"begin": 22.1, "between": 19.3, "end": 22.8}
# board (RP2040, 125 MHz) ns that sim/reference_work.py's workload stands for: tools/
# board_factor.py ran that probe with that firmware on CPython 3.11 (2-core bench machine,
# 2026-12-02): host 76.6 / 64.5 / 92.0 us per cycle, chip / host 288 / 299 / 248 (mean 278.5),
# the workload 143.8 us host in the same processes -> 278.5 x 143.8 us = 40.05 ms
REF_BOARD_NS = {"rp2040": 40051213}
# board (RP2040, 125 MHz) ns per CPython bytecode instruction of firmware code, mode "counted":
# tools/board_factor.py counted the instructions of that probe with that firmware (sim/
# opcount.py): 17224 / 16979 / 20801 per cycle -> 1283 / 1137 / 1096 ns each (mean 1172)
INSTR_PER_CYCLE = {"begin": 17224, "between": 16979, "end": 20801}
NS_PER_INSTR_PER_ROLE = {"begin": 1283.1, "between": 1136.7, "end": 1096.1}
NS_PER_INSTR = {"rp2040": 1172.0}
# counted mode: instructions charged for the virtual link ends, as the board's HAL methods they
# stand for (sim/opcount.py count of hal/link_pio.py with native state-machine calls at
# opcount.FOREIGN each; host_tests/test_board_time_counted.py checks them against the HAL)
HAL_INSTR = {"rx_read": 61, "tx_write_byte": 60}   # 60: + the ticks of the last put (issue 19)
MODES = ("zero", "fixed", "measured", "counted")
TRACE_FIRST = 200         # counted mode: calls of each (role, call) counted from the start, then
#                           while a kind of it has no count yet (its first call: host time x
#                           factor), at most TRACE_MAX calls in all
TRACE_MAX = 50000
TRACE_WAIT = 1000         # counted calls of a (role, call) to wait for a kind to come again
# board time per RP2040 time for the other targets: ESTIMATES, not measured on the chips -
# ESP32 (Xtensa LX6, 240 MHz) and ESP32-C3 (RV32IMC, 160 MHz) run MicroPython bytecode about
# 2x and 1.4x as fast as the RP2040's Cortex-M0+ at 125 MHz (clock ratio x a similar IPC)
TARGET_VS_RP2040 = {"rp2040": 1.0, "esp32": 0.5, "esp32c3": 0.7}
# data-sheet figures used when the scenario gives none
FLASH_ERASE_MS = {"rp2040": 45.0, "esp32": 45.0, "esp32c3": 45.0}   # W25Q16JV / GD25Q32: 4 kB
#                                                   sector erase 45 ms typical (400 ms max)
RX_FIFO_CHARS = {"pio": 8, "uart": 128, "soft": 0}  # RP2040 joined PIO RX FIFO; ESP32 UART FIFO
TX_FIFO_CHARS = {"pio": 8, "uart": 512, "soft": 512}
IRQ_LATENCY_US = 50       # micropython.schedule hand-off at board speed (estimate)

REFRESH_S = 10            # measured mode: re-time the reference work this often (simulated s)
SAMPLES = 9               # host timings per kind of call behind its median cost
WARMUP = 9                # ... after this many of that kind (cold code on the host)
_KEYS = ("mode", "factor", "cycle_ms", "poll_us_per_char", "irq_latency_us", "flash_erase_ms",
         "loop_poll_ms", "ns_per_instr")
_calibrated = {}


def check(d):
    """The scenario's ``board_time`` object, checked (unknown keys raise ScenarioError)."""
    if not isinstance(d, dict):
        raise ScenarioError("board_time must be an object")
    for k in d:
        if k not in _KEYS:
            raise ScenarioError("board_time: unknown key %r (allowed: %s)" % (k, ", ".join(_KEYS)))
    mode = d.get("mode", "zero")
    if mode not in MODES:
        raise ScenarioError("board_time.mode must be one of %s" % ", ".join(MODES))
    cyc = d.get("cycle_ms", {})
    if not isinstance(cyc, dict) or any(r not in CHIP_MS_PER_CYCLE for r in cyc):
        raise ScenarioError("board_time.cycle_ms must map begin/between/end to ms")
    for k in ("factor", "poll_us_per_char", "irq_latency_us", "flash_erase_ms", "loop_poll_ms", "ns_per_instr"):
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise ScenarioError("board_time.%s must be a number >= 0" % k)
    return dict(d)


class BoardTime:
    """Costs of role calls on one board target (``cpu``: board_def.CPU)."""

    def __init__(self, cfg, cpu="rp2040", backend="pio"):
        cfg = cfg or {}
        self.mode = cfg.get("mode", "zero")
        self.zero = self.mode == "zero"
        self.cpu = cpu
        self.backend = backend
        self.cycle_ns = {r: int(v * 1e6) for r, v in cfg.get("cycle_ms", {}).items()}
        self.poll_ns_per_char = int(cfg.get("poll_us_per_char", 0) * 1000)
        self.irq_latency_ns = int(cfg.get("irq_latency_us", IRQ_LATENCY_US) * 1000)
        self.flash_erase_ns = int(cfg.get("flash_erase_ms", FLASH_ERASE_MS.get(cpu, 45.0)) * 1e6)
        self.loop_poll_ms = cfg.get("loop_poll_ms")
        self.rx_fifo = RX_FIFO_CHARS.get(backend, 8)
        self.tx_fifo = TX_FIFO_CHARS.get(backend, 8)
        self.factor = cfg.get("factor")
        if self.mode == "measured" and self.factor is None:
            self.factor = calibrate() * TARGET_VS_RP2040.get(cpu, 1.0)
        self.calibrated = self.mode == "measured" and cfg.get("factor") is None
        self.counted = self.mode == "counted"
        if self.counted:
            # the fallback for a kind of call not counted yet: host time x the reference factor
            if self.factor is None:
                self.factor = calibrate() * TARGET_VS_RP2040.get(cpu, 1.0)
            self.ns_per_instr = float(cfg.get("ns_per_instr", NS_PER_INSTR["rp2040"] *
                                              TARGET_VS_RP2040.get(cpu, 1.0)))
            # per kind of call from the chip tier (sim/cost/rp2040.json), unless the scenario
            # fixes one figure for every call
            self.costs = {}
            if "ns_per_instr" not in cfg:
                from sim import cost
                t = cost.ns_per_instr_table(cost.load("rp2040"))
                scale = TARGET_VS_RP2040.get(cpu, 1.0)
                self.costs = {k: v * scale for k, v in t.items()}
                if t:
                    self.ns_per_instr = self.costs["default"]
            from sim import opcount
            from sim import wire
            self._counter = opcount.Counter([_firmware_dir()], costs={
                wire.WireRx.read.__code__: HAL_INSTR["rx_read"],
                wire.Wire.write_byte.__code__: HAL_INSTR["tx_write_byte"]})
            self._offs = {}         # kind of call -> board ns of each byte it writes
            self._traced = {}       # (role, call) -> calls counted
            self._open = {}         # (role, call) -> its kinds with no count yet
            self._n_traced = 0
            self.host_charged = []  # kinds charged by host time (none counted like them yet)
        self.factor = float(self.factor or 0.0)
        self.tracing = False
        self.scale = 1.0          # host speed now vs at calibration (reference_ns), measured mode
        self.overhead_ns = self.stamp_ns = 0
        if self.mode in ("measured", "counted"):
            self.overhead_ns, self.stamp_ns = timer_overhead()
        self._samples = {}
        self.charged = {}         # counted mode: (role, call) -> [board ns charged, calls]

    @staticmethod
    def now_ns():
        return time.thread_time_ns()

    # the byte stamps inside a call (where each byte written leaves): a cheap clock (vDSO);
    # preemption inside a call only moves a byte later, never past the call's charged end
    stamp_clock = staticmethod(time.perf_counter_ns)

    def net_ns(self, host_ns, stamps=0):
        """Host ns of a timed call without the timer's own cost (and ``stamps`` clock reads
        made inside it)."""
        v = host_ns - self.overhead_ns - stamps * self.stamp_ns
        return v if v > 0 else 0

    def _measured(self, key, host_ns):
        """factor x the median of the host times WARMUP .. WARMUP + SAMPLES of calls of this kind
        (same role, same call, same amount of work, same link events; a kind seen fewer times:
        the median of what there is): one slow host call (a cache miss, a timer interrupt) is
        not charged as a slow board call, the cold first calls of a code path are not charged
        at all once it has warmed up, and a run settles to fixed costs."""
        got = self._samples.get(key)
        if got is None:
            got = self._samples[key] = [0, [], []]      # calls seen, cold timings, warm timings
        if len(got[2]) < SAMPLES:
            got[0] += 1
            lst = got[1] if got[0] <= WARMUP else got[2]
            lst.append(host_ns * self.scale)
            lst.sort()
        lst = got[2] if got[2] else got[1]
        return int(lst[len(lst) // 2] * self.factor)

    def run(self, pre, fn):
        """Run fn(); in counted mode count its firmware instructions when this (role, call) is
        still collecting samples. Returns the count or None (not counted)."""
        if not self.counted:
            fn()
            return None
        n = self._traced.get(pre, 0)
        op = self._open.get(pre)
        if op:
            for key in [key for key, since in op.items() if n - since > TRACE_WAIT]:
                del op[key]             # a kind seen once and not again: stop waiting for it
        if (n < TRACE_FIRST or op) and self._n_traced < TRACE_MAX:
            self._traced[pre] = n + 1
            self._n_traced += 1
            self.tracing = True
            try:
                return self._counter.run(fn)
            finally:
                self.tracing = False
        fn()
        return None

    def stamp(self):
        """Where a call is now, for the bytes it writes (sim/wire.py Wire.hold): instructions
        so far in a counted call, else ``stamp_clock``."""
        if self.tracing:
            return self._counter.n
        return time.perf_counter_ns()

    def write_offsets(self, kind, held, counted, pre=None, nspi=None):
        """Counted mode: board ns into the call of each byte a call of this kind writes (held:
        (byte, stamp) pairs), from the first counted call of the kind, else of the same
        (role, call) ``pre`` (a loop wake-up writes what its poll() drains, at its start),
        else of any receive handler; None when there is none yet. The offsets are kept in
        instructions and priced at ``nspi``, the calling (role, call)'s ns per instruction -
        the same figure its whole cost is priced at (default: the mean of the kinds; that mean
        once moved every forwarded byte when the End's cycle cost changed)."""
        if nspi is None:
            nspi = self.ns_per_instr
        got = self._offs.get(kind)
        if got is None and counted and held:
            got = self._offs[kind] = [st for _, st in held]
            if pre is not None and pre not in self._offs:
                self._offs[pre] = got
            if "handler" not in self._offs and pre is not None and pre[-1] == "poll":
                self._offs["handler"] = got
        if got is None:
            got = self._offs.get(pre)
            if got is None:
                got = self._offs.get("handler")
        return None if got is None else [int(st * nspi) for st in got]

    def call_nspi(self, pre, key):
        """Counted mode: ns per instruction of a call (``pre``: (is Begin, is End, kind); ``key``
        ends with True for a loop wake-up that ran the role's cycle), as cycle_cost / poll_cost
        price it."""
        role = role_of(pre)
        if pre[-1] != "cycle":                  # priced by poll_cost
            return self.nspi(role, "rx_char")
        return self.nspi(role, "cycle" if key and key[-1] is True else "wake")

    def nspi(self, role, call):
        """Counted mode: board ns per instruction of a (role, call) ("cycle", "rx_char"): the
        chip tier's calibration of that kind, else the one figure."""
        c = self.costs
        if not c:
            return self.ns_per_instr
        from sim import cost
        return c.get(cost.kind_of(role, call), c["default"])

    def _count_cost(self, key, pre, instr, host_ns, nspi=None):
        """Counted mode: ns per instruction (``nspi``, default ns_per_instr) x the median of the
        first SAMPLES instruction counts of this kind of call; a kind with no count yet costs
        host time x factor, and the next call of its (role, call) is counted."""
        if nspi is None:
            nspi = self.ns_per_instr
        got = self._samples.get(key)
        if got is None:
            got = self._samples[key] = []
        if instr is not None and len(got) < SAMPLES:
            got.append(instr)
            got.sort()
            op = self._open.get(pre)
            if op and key in op:
                del op[key]
        if got:
            return int(got[len(got) // 2] * nspi)
        op = self._open.setdefault(pre, {})
        if key not in op:
            op[key] = self._traced.get(pre, 0)
        # not counted yet: the costliest counted kind of the same call and amount of work, else
        # the cheapest of the same call (reproducible), else host time x factor
        like = [v[len(v) // 2] for k, v in self._samples.items() if v and k[:2] == key[:2]]
        if like:
            return int(max(like) * nspi)
        like = [v[len(v) // 2] for k, v in self._samples.items() if v and k[0] == key[0]]
        if like:
            return int(min(like) * nspi)
        self.host_charged.append(key)
        return int(host_ns * self.scale * self.factor)

    def refresh(self):
        """Measured mode with the calibrated factor: time the reference work again; the host
        times of later calls are scaled by how much faster or slower the host is now than at
        calibration (other load on a shared machine), so the board costs stay put."""
        ref = _calibrated.get("reference_ns")
        if (self.calibrated or self.counted) and ref:
            self.scale = ref / reference_ns()

    @property
    def effective_factor(self):
        """Board ns per host ns right now."""
        return self.factor * self.scale

    def cycle_cost(self, role, host_ns, key=(), instr=None, pre=None):
        """Board ns of a call that did the role's cycle work (it read the cell: fixed mode
        charges ``cycle_ms`` to whichever call measures, wherever the firmware does it).
        ``instr``: the call's instruction count (counted mode, None: not counted)."""
        if self.mode == "fixed":
            return self.cycle_ns.get(role, 0)
        if self.mode == "measured":
            return self._measured((role, "cycle") + key, host_ns)
        if self.counted:
            # a loop wake-up that ran the role's cycle, or one that did not (the cell
            # measurement, service polls, TX feeding): the last element of ``key`` says
            call = "cycle" if key and key[-1] is True else "wake"
            ns = self._count_cost((role, "cycle") + key, pre, instr, host_ns, self.nspi(role, call))
            self._charge(role, call, ns)
            return ns
        return 0

    def _charge(self, role, call, ns):
        """Counted mode: board ns charged per (role, call), and how many calls (the mean cost of
        a kind over a run, frequency-weighted: sim/cost calibration)."""
        k = (role, call)
        got = self.charged.get(k)
        if got is None:
            got = self.charged[k] = [0, 0]
        got[0] += ns
        got[1] += 1

    def poll_cost(self, chars, host_ns, key=(), instr=None, pre=None):
        """Board ns of a byte-path call that handled ``chars`` received characters (``pre``:
        (is Begin, is End, call), which says the role)."""
        if self.mode == "fixed":
            return chars * self.poll_ns_per_char
        if self.mode == "measured":
            return self._measured(("poll", chars) + key, host_ns)
        if self.counted:
            role = role_of(pre)
            return self._count_cost(("poll", chars, role) + key, pre, instr, host_ns, self.nspi(role, "rx_char"))
        return 0


def role_of(pre):
    """The role of a call's ``pre`` tuple (is Begin, is End, call)."""
    if not pre:
        return "between"
    return "begin" if pre[0] else "end" if pre[1] else "between"


def _firmware_dir():
    import os
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware") + os.sep


def timer_overhead(n=2000):
    """Host ns the timing itself adds to a timed call (an empty call between two
    ``BoardTime.now_ns`` reads), and the cost of one ``stamp_clock`` read inside a call (the
    byte stamps of sim/wire.py Wire.hold): medians, measured once per process."""
    got = _calibrated.get("timer")
    if got is None:
        now = BoardTime.now_ns

        def empty():
            pass
        stamp = BoardTime.stamp_clock
        pairs = []
        reads = []
        for _ in range(5):
            t = 0
            for _ in range(n):
                t0 = now()
                empty()
                t += now() - t0
            pairs.append(t / n)
            t0 = now()
            for _ in range(n):
                stamp()
            reads.append((now() - t0) / n)
        pairs.sort()
        reads.sort()
        got = _calibrated["timer"] = (int(pairs[2]), int(reads[2]))
    return got


def reference_ns(repeat=9):
    """Host CPU ns of the fixed workload (sim/reference_work.py): how fast the host is now."""
    from sim import reference_work
    return reference_work.reference_ns(repeat)


def calibrate():
    """Board (RP2040) time per host time: REF_BOARD_NS over the host time of the fixed workload
    (no firmware under test in it). Computed once per process."""
    if "rp2040" in _calibrated:
        return _calibrated["rp2040"]
    ref = reference_ns()
    _calibrated["reference_ns"] = ref
    _calibrated["ref_board_ns"] = REF_BOARD_NS["rp2040"]
    _calibrated["rp2040"] = REF_BOARD_NS["rp2040"] / float(ref)
    return _calibrated["rp2040"]


def calibration():
    """What ``calibrate`` found (empty before it ran): the factor, the fixed workload's host ns
    and the board ns it stands for, the timer overhead (ns per timed call, per clock read)."""
    return dict(_calibrated)
