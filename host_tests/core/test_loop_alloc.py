"""The WHOLE board loop - hal/loop.py's once() (step + rest) with the role's poll, tick and cycle, the
real CellBoard, frames arriving and leaving - runs with the heap locked on the MicroPython
Unix port (a garbage collection in a Between board mid-frame cuts the frame at the next
board). Virtual time from closures (no bound methods made per call), a ring-buffer receiver
and a FIFO transmitter that allocate nothing themselves. On CPython the same runs unlocked.
"""
from array import array

from core import codec, frame, options
from hal.loop import Loop
from roles import begin, between
from roles.cell_board import CellBoard
import support

SW = options.word_for(options.range_code_for_cells(16), 3400)
NO_DATA = "/nonexistent-cellchain-data"   # nothing is written: calibration reads as missing


class CellDef:
    NAME = "fake"
    CELL_DIVIDER_NUM = 2
    CELL_DIVIDER_DEN = 1
    ADC_VREF_UV = 3300000
    NTC_ADC_PIN = 27
    NTC_BETA = 3950
    NTC_R25_OHM = 10000
    NTC_SERIES_OHM = 10000
    NTC_SUPPLY_UV = 3300000
    LINK_CYCLE_MS = 1000
    CURRENT_LOW_RANGE_A = 20
    CURRENT_HIGH_RANGE_A = 500
    CURRENT_LOW_UV_PER_A = 75000
    CURRENT_HIGH_UV_PER_A = 3000
    CURRENT_LOW_ZERO_UV = 1650000
    CURRENT_HIGH_ZERO_UV = 1650000


class RingRx:
    """hw.link_rx: characters (and GAP) pushed by the virtual clock, read() without allocation."""

    def __init__(self, size=1024):
        self.buf = array("h", [0] * size)
        self.size = size
        self.head = 0
        self.tail = 0

    def push(self, v):
        nxt = (self.tail + 1) % self.size
        if nxt != self.head:
            self.buf[self.tail] = v
            self.tail = nxt

    def read(self):
        if self.head == self.tail:
            return codec.NONE
        v = self.buf[self.head]
        self.head = (self.head + 1) % self.size
        return v


class IrqRingRx(RingRx):
    """A receiver with arrival interrupts (PIO, soft): its handler runs (scheduled) as each
    character arrives, also while the loop sleeps in time.sleep_ms."""

    def __init__(self, size=1024):
        RingRx.__init__(self, size)
        self.handler = None

    def set_handler(self, fn):
        self.handler = fn


class FifoTx:
    """An 8-deep transmitter FIFO that drains one character per ms of virtual time."""

    def __init__(self):
        self.level = 0
        self.sent = 0

    def write_byte(self, b):
        if self.level >= 8:
            return False
        self.level += 1
        return True

    def drain(self, ms):
        n = ms if ms < self.level else self.level
        self.level -= n
        self.sent += n


class Hw:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.link_rx = None
        self.link_tx = None
        self.duty = 0
        self.led = False
        self.feeds = 0

    def read_cell_uv(self):
        return 1650000 + (self.feeds & 3) * 800

    def read_temp_uv(self):
        return 1650000

    def set_balance_duty(self, permille):
        self.duty = permille

    def set_led(self, on):
        self.led = on

    def button_down(self):
        return False

    def reset_cause(self):
        return "power"

    def feed_watchdog(self):
        self.feeds += 1

    def read_switches(self):
        return SW

    def read_current_uv(self, sensor, high_range):
        return 1650000


class World:
    """Virtual time; every ms the transmitter drains, every frame period a 16-cell frame
    arrives at the receiver (its characters and the closing GAP)."""

    def __init__(self, rx, tx, period_ms=1000):
        self.ms = [0]
        self.rx = rx
        self.tx = tx
        buf = bytearray(frame.MAX_FRAME)
        self.n = frame.build_empty(buf, 16, 1, SW, 1, 1, period_ms=period_ms)
        self.frame = buf
        self.period = period_ms
        self.next_frame = [period_ms // 2]
        ms = self.ms

        def ticks_ms():
            return ms[0]

        def ticks_us():
            return ms[0] * 1000

        def ticks_diff(a, b):
            return a - b

        def ticks_add(a, b):
            return a + b

        def sleep_ms(d):
            self.advance(d)

        self.ticks_ms = ticks_ms
        self.ticks_us = ticks_us
        self.ticks_diff = ticks_diff
        self.ticks_add = ticks_add
        self.sleep_ms = sleep_ms

    def advance(self, d):
        ms = self.ms
        while d > 0:
            ms[0] += 1
            d -= 1
            if self.tx is not None:
                self.tx.drain(1)
            rx = self.rx
            if rx is None:
                continue
            handler = getattr(rx, "handler", None)
            if handler is None:
                if ms[0] >= self.next_frame[0]:
                    self.next_frame[0] += self.period
                    f = self.frame
                    for i in range(self.n):
                        rx.push(f[i])
                    rx.push(codec.GAP)
                continue
            # one character per ms (9600 baud), the GAP 3 ms after the last, each handed over
            # by the receiver's interrupt at once
            k = ms[0] - self.next_frame[0]
            if 0 <= k < self.n:
                rx.push(self.frame[k])
                handler()
                if k == self.n - 1:
                    self.frame_end_ms = ms[0]         # its last character (CRC_B) is in
            elif k == self.n + 3:
                rx.push(codec.GAP)
                handler()
                self.next_frame[0] += self.period


def _run_locked(lp, world, steps, warmup=400):
    for _ in range(warmup):
        lp.once()
    return support.no_alloc(lp.once, steps)


def test_between_loop_runs_with_the_heap_locked():
    hw = Hw(NO_DATA)
    hw.link_rx = RingRx()
    hw.link_tx = FifoTx()
    role = between.Between(hw, CellDef, CellBoard(hw, CellDef))
    world = World(hw.link_rx, hw.link_tx)
    lp = Loop(role, CellDef, hw, None, world)
    assert _run_locked(lp, world, 4000)
    assert lp.stats.cycles >= 3 and role.port.fw.frames >= 3 and role.originated == 0


def test_between_originating_loop_runs_with_the_heap_locked():
    hw = Hw(NO_DATA)
    hw.link_rx = RingRx()
    hw.link_tx = FifoTx()
    role = between.Between(hw, CellDef, CellBoard(hw, CellDef))
    world = World(None, hw.link_tx)            # upstream silent: the fallback timer clocks it
    lp = Loop(role, CellDef, hw, None, world)
    assert _run_locked(lp, world, 3000, warmup=3000)
    assert role.originated >= 2 and hw.link_tx.sent > 100


def test_begin_loop_runs_with_the_heap_locked():
    from core.current import SensorPair
    hw = Hw(NO_DATA)
    hw.link_tx = FifoTx()
    role = begin.Begin(hw, CellDef, CellBoard(hw, CellDef), SensorPair(CellDef))
    world = World(None, hw.link_tx)
    lp = Loop(role, CellDef, hw, None, world)
    assert _run_locked(lp, world, 4000)
    assert role.frames_sent >= 3 and role.tx_skipped == 0


def test_between_sleeps_between_frames_and_cycles_right_after_each():
    """Interrupt-driven receiver: the loop wakes when a frame is due, when it should have
    passed and then every FRAME_POLL_MS until it has, else at the next measurement / LED
    edge; the cycle runs within FRAME_POLL_MS of the frame's end."""
    from roles import FRAME_POLL_MS
    hw = Hw(NO_DATA)
    hw.link_rx = IrqRingRx()
    hw.link_tx = FifoTx()
    role = between.Between(hw, CellDef, CellBoard(hw, CellDef))
    world = World(hw.link_rx, hw.link_tx)
    lp = Loop(role, CellDef, hw, None, world)
    ends = []
    cycle_at = []
    orig = role.cycle

    def cycle(dt):
        cycle_at.append(world.ms[0])
        ends.append(getattr(world, "frame_end_ms", -1))
        orig(dt)

    role.cycle = cycle
    lp._due = role.cycle_due
    lp.role = role
    while world.ms[0] < 3000:
        lp.once()
    w0 = lp.stats.sleeps
    c0 = len(cycle_at)
    while world.ms[0] < 13000:
        lp.once()
    wakeups_per_s = (lp.stats.sleeps - w0) // 10
    assert len(cycle_at) - c0 == 10                       # one cycle per frame, no fallback
    for k in range(c0, len(cycle_at)):
        assert 0 <= cycle_at[k] - ends[k] <= FRAME_POLL_MS, (cycle_at[k], ends[k])
    # the receiver's handler forwards the characters: the loop wakes when the frame is due
    # and when it should have passed (not every 5 ms of the window: 35/s), a few others
    assert wakeups_per_s <= 8, wakeups_per_s
    assert role.port.fw.frames >= 12 and role.originated == 0 and role.link_ok


def test_begin_info_led_lights_while_its_frame_goes_out():
    """The frame leaves through the Originator a few characters per wake-up, so the loop keeps
    ticking: the 50 ms LED pulse of each frame shows (a blocking write of the whole frame ate
    it inside the next tick's dt)."""
    from core.current import SensorPair

    class LedHw(Hw):
        def __init__(self, d):
            Hw.__init__(self, d)
            self.lit = 0

        def set_led(self, on):
            if on and not self.led:
                self.lit += 1
            self.led = on

    hw = LedHw(NO_DATA)
    hw.link_tx = FifoTx()
    role = begin.Begin(hw, CellDef, CellBoard(hw, CellDef), SensorPair(CellDef))
    world = World(None, hw.link_tx)
    lp = Loop(role, CellDef, hw, None, world)
    while world.ms[0] < 5500:
        lp.once()
    assert role.frames_sent >= 5 and hw.lit >= 5
    assert hw.link_tx.sent >= 5 * 118 - 8         # every frame got out whole meanwhile


class SleepDef(CellDef):
    CPU = "rp2040"
    LIGHT_SLEEP = True
    SLEEP_WAKE_MS = 2


class SleepMachine:
    """machine for hal.sleep.LightSleep: lightsleep advances the virtual time (the frames the
    world delivers meanwhile still reach the receiver: here only the heap is under test)."""

    def __init__(self, world):
        self.world = world
        self.slept = [0]

    def lightsleep(self, ms):
        self.slept[0] += ms
        self.world.advance(ms)

    def freq(self, f=None):
        return 125000000


def test_between_loop_light_sleeping_runs_with_the_heap_locked():
    """The loop's light-sleep path (the role's budget, hal.sleep.LightSleep's checks and its
    clock restore) allocates nothing either."""
    from hal import sleep as hal_sleep
    hw = Hw(NO_DATA)
    hw.link_rx = IrqRingRx()
    hw.link_tx = FifoTx()
    hw.duty_permille = 0
    hw.link_tx.pending = lambda: 0
    role = between.Between(hw, SleepDef, CellBoard(hw, SleepDef))
    world = World(hw.link_rx, hw.link_tx)
    m = SleepMachine(world)
    sl = hal_sleep.make(SleepDef, hw, m)
    lp = Loop(role, SleepDef, hw, None, world, sl)
    assert _run_locked(lp, world, 300, warmup=300)
    assert lp.stats.light_sleeps >= 3 and m.slept[0] > 2000 and lp.stats.sleep_errors == 0
    assert role.port.fw.frames >= 3 and role.link_ok


def test_light_sleep_waits_for_bytes_the_role_still_queues():
    """Issue 19: the sleeper asked the transmitters only; bytes still in the role's software
    queues (a frame the Originator holds, a frame passing through the forwarder) were cut by
    the sleep. The loop hands the role's tx_busy() to the sleeper, which declines on it."""
    from hal import sleep as hal_sleep
    hw = Hw(NO_DATA)
    hw.link_rx = RingRx()
    hw.link_tx = FifoTx()
    hw.duty_permille = 0
    hw.link_tx.pending = lambda: 0     # FIFO and shift register empty: only software queues
    role = between.Between(hw, SleepDef, CellBoard(hw, SleepDef))
    world = World(None, hw.link_tx)
    m = SleepMachine(world)
    sl = hal_sleep.make(SleepDef, hw, m)
    Loop(role, SleepDef, hw, None, world, sl)
    assert sl.ready()
    assert role.originate() > 0        # queued in the Originator, none of it in the FIFO yet
    assert not sl.ready() and not sl.sleep(100) and m.slept[0] == 0
    while role.origin.busy():
        role.poll()
        world.advance(1)
    assert sl.ready()
    f = world.frame
    for i in range(20):                # the first characters of a frame from upstream
        hw.link_rx.push(f[i])
    role.poll()
    assert role.fw.in_frame() and not sl.ready() and not sl.sleep(100)
    for i in range(20, world.n):
        hw.link_rx.push(f[i])
        role.poll()
        world.advance(1)
    assert not role.fw.in_frame() and sl.ready() and sl.sleep(50) and m.slept[0] == 50
