"""The End board's whole loop - hal/loop.py's once() (step + rest) with the End role as make() builds it
(settings, pack brain, services), the real CellBoard, hal/ble.py's transport on a fake radio,
the extended output on an 8-deep FIFO, frames arriving - in virtual time (issue 19):

* the extended-output packet goes out without a blocking write: queued, fed to the FIFO at the
  wake-ups, every packet complete, back to back and byte-identical to what the encoder made;
* the loop runs with the heap locked on the MicroPython Unix port (a collection inside the
  receive handler overflowed the RX FIFO on the chip and cut a frame).
Both interpreters.
"""
import sys

from core import settings as cs
from hal.loop import Loop
from roles import end
from roles.cell_board import CellBoard
import support
from support import tmpdir
from test_loop_alloc import CellDef, Hw, IrqRingRx, World


class ExtFifo:
    """hw.extout_tx: an 8-deep FIFO that sends one character per ms of virtual time; ``write``
    (the blocking burst) is counted and refused."""

    depth = 8
    char_us = 1000

    def __init__(self, ms):
        self.ms = ms
        self.fifo = bytearray(8)
        self.level = 0
        self.head = 0
        self.out = bytearray(4096)
        self.t_out = [0] * 4096
        self.n_out = 0
        self.blocking = 0

    def write_byte(self, b):
        if self.level >= 8:
            return False
        self.fifo[(self.head + self.level) & 7] = b
        self.level += 1
        return True

    def write(self, buf, n):
        self.blocking += 1
        raise AssertionError("blocking write on the extended output")

    def pending(self):
        return self.level

    def drain(self, n):
        while n > 0 and self.level:
            k = self.n_out
            if k < 4096:
                self.out[k] = self.fifo[self.head]
                self.t_out[k] = self.ms[0]
                self.n_out = k + 1
            self.head = (self.head + 1) & 7
            self.level -= 1
            n -= 1


class FakeUUID:
    def __init__(self, text):
        self.text = text


class FakeBluetooth:
    """The ``bluetooth`` module hal/ble.py imports (none on the Unix port or CPython)."""
    UUID = FakeUUID


class FakeRadio:
    """bluetooth.BLE(): advertising, no central connected."""

    def __init__(self):
        self.on = False
        self.handler = None
        self.adverts = 0

    def active(self, on=None):
        if on is not None:
            self.on = on
        return self.on

    def config(self, **kw):
        pass

    def irq(self, handler):
        self.handler = handler

    def gatts_register_services(self, services):
        return ((10, 12),)

    def gatts_set_buffer(self, handle, size, append=False):
        pass

    def gap_advertise(self, interval, adv_data=None, resp_data=None, connectable=True):
        self.adverts += 1

    def gatts_read(self, handle):
        return b""

    def gatts_notify(self, conn, handle, data):
        pass

    def gap_disconnect(self, conn):
        pass


def _hal_ble():
    had = "bluetooth" in sys.modules
    if not had:
        try:
            import bluetooth  # noqa: F401  (a port with the real module)
            had = True
        except ImportError:
            sys.modules["bluetooth"] = FakeBluetooth
    from hal import ble
    return ble, had


class EndHw(Hw):
    def __init__(self, data_dir):
        Hw.__init__(self, data_dir)
        self.charge = None
        self.load = None
        self.ble = None
        self.extout_tx = None

    def set_charge_relay(self, on):
        self.charge = on

    def set_load_relay(self, on):
        self.load = on

    def set_charge_led(self, on):
        pass

    def set_load_led(self, on):
        pass


def _end_rig(with_ble):
    d = tmpdir()
    cs.save(d + "/settings.json", cs.preset(cs.LIFEPO4))
    hw = EndHw(d)
    hw.link_rx = IrqRingRx()
    world = World(hw.link_rx, None)
    ext = ExtFifo(world.ms)
    world.tx = ext
    hw.extout_tx = ext
    radio = None
    had = True
    if with_ble:
        ble, had = _hal_ble()
        radio = FakeRadio()
        hw.ble = ble.NusTransport(radio)
    role = end.make(hw, CellDef, cell=CellBoard(hw, CellDef))
    lp = Loop(role, CellDef, hw, None, world)
    return hw, role, world, ext, lp, radio, had


def _forget_fake_bluetooth(had):
    if not had:
        for name in ("bluetooth", "hal.ble"):
            if name in sys.modules:
                del sys.modules[name]


def test_end_extended_output_never_blocks_and_goes_out_whole():
    hw, role, world, ext, lp, radio, had = _end_rig(False)
    made = []
    enc = role.services.extout.encoder
    encode = enc.encode

    def recording(snap, brain, settings):
        b = encode(snap, brain, settings)
        made.append(bytes(b))
        return b

    enc.encode = recording
    while world.ms[0] < 8000:
        lp.once()
    assert ext.blocking == 0
    n = ext.n_out
    assert len(made) >= 5 and n >= 58 * (len(made) - 1)
    assert bytes(ext.out[:n]) == b"".join(made)[:n]             # byte-identical, in order
    for k in range(n // 58):                                     # each packet back to back
        t = ext.t_out[k * 58:(k + 1) * 58]
        assert t[-1] - t[0] == 57, (k, t[0], t[-1])
    assert role.complete_frames >= 6 and role.snap.comm_ok


def test_end_loop_runs_with_the_heap_locked():
    """The End's loop with a BLE transport present (advertising) and the extended output on,
    over frames, cycles and packets: nothing allocated per wake-up, cycle or byte."""
    hw, role, world, ext, lp, radio, had = _end_rig(True)
    try:
        while world.ms[0] < 3000:                                # warm-up: first packets out
            lp.once()
        c0 = lp.stats.cycles
        p0 = role.services.extout.packets
        # an alarm change in the window would save the event log to flash: a record write
        # allocates (like the brain's state save), but it is per event, not per cycle
        role.services.events_path = None
        assert support.no_alloc(lp.once, 3000)
        assert lp.stats.cycles - c0 >= 3 and role.services.extout.packets - p0 >= 3
        assert radio.on and radio.adverts >= 1 and role.services.transport_errors == 0
        assert ext.blocking == 0 and role.snap.comm_ok
    finally:
        _forget_fake_bluetooth(had)


class LedLog:
    """hw.set_led with the virtual time of every change: [(ms, on)]."""

    def __init__(self, hw, ms):
        self.ms = ms
        self.log = []
        hw.set_led = self.set_led

    def set_led(self, on):
        if not self.log or self.log[-1][1] != on:
            self.log.append((self.ms[0], on))

    def flashes(self):
        """[(on ms, length ms)] of every complete flash."""
        out = []
        for k in range(len(self.log) - 1):
            t, on = self.log[k]
            if on and not self.log[k + 1][1]:
                out.append((t, self.log[k + 1][0] - t))
        return out


def _check_flashes(flashes, frame_ends, t0, t1):
    """One flash of FRAME_FLASH_MS per frame that ended in [t0, t1), lit within FRAME_POLL_MS of
    the frame's end."""
    from core.ui import FRAME_FLASH_MS
    from roles import FRAME_POLL_MS
    ends = [e for e in frame_ends if t0 <= e < t1]
    got = [f for f in flashes if t0 <= f[0] < t1 + FRAME_POLL_MS]
    assert len(ends) >= 5 and len(got) == len(ends), (ends, flashes)
    for k in range(len(ends)):
        e = ends[k]
        t, length = got[k]
        assert 0 <= t - e <= FRAME_POLL_MS and length == FRAME_FLASH_MS, (e, t, length)


def _frame_ends(world):
    ends = []
    advance = world.advance

    def logged(d):
        advance(d)
        e = getattr(world, "frame_end_ms", None)
        if e is not None and (not ends or ends[-1] != e):
            ends.append(e)

    world.advance = logged
    return ends


def test_every_frame_flashes_the_led_on_between_and_end():
    """Issue 19: a Between's LED never lit - the pulse started in cycle(), after that wake-up's
    tick(), and the next wake-up was the pulse's end. With the real Loop: on every frame the
    LED pin goes high (within a poll interval of the frame's end) for the whole pulse."""
    from roles import between
    from test_loop_alloc import FifoTx
    hw = Hw(support.tmpdir())
    hw.link_rx = IrqRingRx()
    hw.link_tx = FifoTx()
    role = between.Between(hw, CellDef, CellBoard(hw, CellDef))
    world = World(hw.link_rx, hw.link_tx)
    ends = _frame_ends(world)
    led = LedLog(hw, world.ms)
    lp = Loop(role, CellDef, hw, None, world)
    while world.ms[0] < 9000:
        lp.once()
    _check_flashes(led.flashes(), ends, 2000, 8500)

    hw, role, world, ext, lp, radio, had = _end_rig(False)
    ends = _frame_ends(world)
    led = LedLog(hw, world.ms)
    while world.ms[0] < 9000:
        lp.once()
    _check_flashes(led.flashes(), ends, 2000, 8500)


def test_begin_led_flashes_on_every_frame_it_sends():
    from core.current import SensorPair
    from core.ui import FRAME_FLASH_MS
    from roles import begin
    from test_loop_alloc import FifoTx
    hw = Hw(support.tmpdir())
    hw.link_tx = FifoTx()
    role = begin.Begin(hw, CellDef, CellBoard(hw, CellDef), SensorPair(CellDef))
    world = World(None, hw.link_tx)
    led = LedLog(hw, world.ms)
    cycles = []
    cycle = role.cycle

    def logged(dt):
        cycles.append(world.ms[0])
        cycle(dt)

    role.cycle = logged
    lp = Loop(role, CellDef, hw, None, world)
    while world.ms[0] < 6500:
        lp.once()
    fl = led.flashes()
    assert len(cycles) >= 6 and len(fl) == len(cycles), (cycles, fl)
    for k in range(len(cycles)):
        c = cycles[k]
        t, length = fl[k]
        assert 0 <= t - c <= 1 and length == FRAME_FLASH_MS, (c, t, length)
