"""The End board's whole loop - hal/loop.py's step() with the End role as make() builds it
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
        lp.step()
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
            lp.step()
        c0 = lp.stats.cycles
        p0 = role.services.extout.packets
        assert support.no_alloc(lp.step, 3000)
        assert lp.stats.cycles - c0 >= 3 and role.services.extout.packets - p0 >= 3
        assert radio.on and radio.adverts >= 1 and role.services.transport_errors == 0
        assert ext.blocking == 0 and role.snap.comm_ok
    finally:
        _forget_fake_bluetooth(had)
