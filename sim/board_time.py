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
  board time per host time. Calls are grouped by kind (role, cycle or poll, characters handled,
  link events raised, bytes sent, flash writes); a kind costs the median of its first
  ``SAMPLES`` timings, so host jitter is not charged as board time. With the calibrated factor
  a fixed piece of firmware work (``reference_ns``) is timed at calibration and again every
  REFRESH_S simulated seconds; host times are scaled by the change, so other load on a shared
  machine does not change the board costs. The factor is ``factor`` from the scenario,
  else calibrated once per process (``calibrate``): the host's time per cycle of each role on a
  three-board chain, against the same figure measured on the chip (``CHIP_MS_PER_CYCLE``). Not
  bit-for-bit reproducible (host timing varies by a few per cent); the bench records the factor
  it used, and a run with that factor given again reproduces it to that jitter.

Besides the call costs: ``irq_latency_us`` (a received character to the scheduled handler on an
interrupt-driven receiver), ``flash_erase_ms`` per settings/state write (the board stalls with
interrupts off; an RP2040 PIO RX FIFO holds ``rx_fifo_chars``), and the loop's poll interval for
polled receivers (the role's ``wake_in_ms``, else ``LOOP_POLL_MS``).
"""
import time

from sim.scenario import ScenarioError

# per cycle (tick + cycle + poll until drained) on the chip, RP2040 at 125 MHz, MicroPython 1.28,
# bench/mp_probe.py's three-board chain (issue 12): begin / between / end
CHIP_MS_PER_CYCLE = {"begin": 22.1, "between": 19.3, "end": 22.8}
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
_KEYS = ("mode", "factor", "cycle_ms", "poll_us_per_char", "irq_latency_us", "flash_erase_ms",
         "loop_poll_ms")
_calibrated = {}


def check(d):
    """The scenario's ``board_time`` object, checked (unknown keys raise ScenarioError)."""
    if not isinstance(d, dict):
        raise ScenarioError("board_time must be an object")
    for k in d:
        if k not in _KEYS:
            raise ScenarioError("board_time: unknown key %r (allowed: %s)" % (k, ", ".join(_KEYS)))
    mode = d.get("mode", "zero")
    if mode not in ("zero", "fixed", "measured"):
        raise ScenarioError("board_time.mode must be zero, fixed or measured")
    cyc = d.get("cycle_ms", {})
    if not isinstance(cyc, dict) or any(r not in CHIP_MS_PER_CYCLE for r in cyc):
        raise ScenarioError("board_time.cycle_ms must map begin/between/end to ms")
    for k in ("factor", "poll_us_per_char", "irq_latency_us", "flash_erase_ms", "loop_poll_ms"):
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
        self.factor = float(self.factor or 0.0)
        self.scale = 1.0          # host speed now vs at calibration (reference_ns), measured mode
        self._samples = {}

    @staticmethod
    def now_ns():
        return time.thread_time_ns()

    def _measured(self, key, host_ns):
        """factor x the median of the first SAMPLES host times of calls of this kind (same role,
        same call, same amount of work, same link events): one slow host call (a cache miss, a
        timer interrupt) is not charged as a slow board call, and a run settles to fixed costs."""
        got = self._samples.get(key)
        if got is None:
            got = self._samples[key] = []
        if len(got) < SAMPLES:
            got.append(host_ns * self.scale)
            got.sort()
        return int(got[len(got) // 2] * self.factor)

    def refresh(self):
        """Measured mode with the calibrated factor: time the reference work again; the host
        times of later calls are scaled by how much faster or slower the host is now than at
        calibration (other load on a shared machine), so the board costs stay put."""
        ref = _calibrated.get("reference_ns")
        if self.calibrated and ref:
            self.scale = ref / reference_ns()

    @property
    def effective_factor(self):
        """Board ns per host ns right now."""
        return self.factor * self.scale

    def cycle_cost(self, role, host_ns, key=()):
        """Board ns of a call that did the role's cycle work (it read the cell: fixed mode
        charges ``cycle_ms`` to whichever call measures, wherever the firmware does it)."""
        if self.mode == "fixed":
            return self.cycle_ns.get(role, 0)
        if self.mode == "measured":
            return self._measured((role, "cycle") + key, host_ns)
        return 0

    def poll_cost(self, chars, host_ns, key=()):
        if self.mode == "fixed":
            return chars * self.poll_ns_per_char
        if self.mode == "measured":
            return self._measured(("poll", chars) + key, host_ns)
        return 0


def _reference_work():
    from core import frame
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 16, 1, 0, 0, 1)
    fw = frame.Forwarder()
    t0 = time.thread_time_ns()
    for _ in range(4):
        fw.gap()
        for i in range(n):
            fw.byte(buf[i])
    return time.thread_time_ns() - t0


def reference_ns(repeat=5):
    """Host CPU ns of a fixed piece of firmware work (a 16-cell frame through core.frame's
    Forwarder, 4 times), the median of ``repeat`` runs: how fast the host is just now."""
    got = sorted(_reference_work() for _ in range(repeat))
    return got[len(got) // 2]


def calibrate(cycles=40):
    """Board (RP2040) time per host time: each role's mean host time per cycle (tick + cycle +
    poll) on a three-board pack, against CHIP_MS_PER_CYCLE; the mean of the three ratios.
    Computed once per process."""
    if "rp2040" in _calibrated:
        return _calibrated["rp2040"]
    from sim import scenario as scenario_mod
    from sim.engine import Simulation
    sim = Simulation(scenario_mod.load({"pack": {"cells": 3}, "duration_s": cycles}))
    try:
        chain = sim.fw.chain
        chain.host_ns = [0, 0, 0]
        chain.host_calls = [0, 0, 0]
        for _ in range(cycles // 4):  # warm-up: relays closed, first saves done
            sim.step()
        chain.host_ns = [0, 0, 0]
        chain.host_calls = [0, 0, 0]
        for _ in range(cycles):
            sim.step()
        per = [chain.host_ns[k] / max(1, chain.host_calls[k]) for k in range(3)]
    finally:
        sim.close()
    _calibrated["reference_ns"] = reference_ns()
    ratios = [CHIP_MS_PER_CYCLE[r] * 1e6 / max(1.0, per[k]) for k, r in enumerate(("begin", "between", "end"))]
    _calibrated["rp2040"] = sum(ratios) / 3.0
    _calibrated["per_role"] = [round(r, 1) for r in ratios]
    _calibrated["host_us_per_cycle"] = [round(p / 1000.0, 1) for p in per]
    return _calibrated["rp2040"]


def calibration():
    """What ``calibrate`` found (empty before it ran): the factor, the per-role factors it is the
    mean of (their spread says how far one code path's cost may be off) and the host µs per
    cycle per role."""
    return dict(_calibrated)
