"""The gateway role (both interpreters): the End's packets in, CAN frames out through the
MCP2515 driver and its register-level fake. 0x351 first, the set once a second, the stop set
and silence within 2 s of stale data, back when data returns, silence after safe()."""
import fake_mcp2515
from core import alarms
from gwpack import Pack
from hal import mcp2515
from roles import gateway
from support import no_alloc

_GAP = -3
_NONE = -1


class FakeRx:
    def __init__(self):
        self.q = []

    def packet(self, pkt):
        self.q.extend(pkt)
        self.q.append(_GAP)

    def read(self):
        if self.q:
            return self.q.pop(0)
        return _NONE


class FakeHw:
    def __init__(self):
        self.chip, spi, cs = fake_mcp2515.make()
        self.can = mcp2515.MCP2515(spi, cs, lambda ms: None)
        self.extin_rx = FakeRx()
        self.led = False
        self.safe_calls = 0

    def set_led(self, on):
        self.led = bool(on)

    def safe(self):
        self.safe_calls += 1
        self.led = False
        self.can.stop()


class Bd:
    GW_PROFILE = "victron"


def run(gw, hw, pack, ms, packets=True, step=100):
    """ms of time in steps; a packet from the End every 1000 ms (when packets)."""
    t = 0
    while t < ms:
        if packets and gw._t_pkt >= 1000:
            gw._t_pkt = 0
            hw.extin_rx.packet(pack.packet())
        gw.poll()
        gw.tick(step)
        gw.cycle(step)
        gw.poll()
        gw._t_pkt += step
        t += step


def make(profile="victron"):
    hw = FakeHw()
    gw = gateway.Gateway(hw, Bd, profile=profile)
    gw._t_pkt = 1000
    return hw, gw, Pack(16)


def test_sets_at_one_hertz_0x351_first():
    hw, gw, p = make()
    run(gw, hw, p, 5000)
    ids = [f[0] for f in hw.chip.frames]
    assert ids[0] == 0x351
    assert ids.count(0x351) in (4, 5)
    assert ids.count(0x377) == ids.count(0x351)        # the whole set each time
    assert gw.sets == ids.count(0x351)
    first = ids[:14]
    assert first == list(gw.bms.ids)


def test_stale_stop_set_then_silence_within_two_seconds():
    hw, gw, p = make()
    run(gw, hw, p, 3000)
    n_before = len(hw.chip.frames)
    t_last_packet = 0
    # the End dies: no more packets. Count time until the stop set and silence.
    chip = hw.chip
    stop_at = None
    for step in range(40):
        run(gw, hw, p, 100, packets=False)
        new = chip.frames[n_before:]
        for fid, data in new:
            if fid == 0x35A and data[0] & 0x03 == 0x01 and stop_at is None:
                stop_at = (step + 1) * 100
        n_before = len(chip.frames)
    assert stop_at is not None and stop_at <= 2000 - t_last_packet
    assert gw.stops == 1 and not gw.sending
    # after the stop set: nothing at all
    n = len(chip.frames)
    run(gw, hw, p, 3000, packets=False)
    assert len(chip.frames) == n
    # the End comes back: fresh limits again
    gw._t_pkt = 1000
    run(gw, hw, p, 2000)
    assert len(chip.frames) > n and gw.sending


def test_stop_set_on_the_ends_comm_flag():
    hw, gw, p = make("pylon")
    run(gw, hw, p, 2000)
    p.brain.alarms = alarms.COMM_LOST
    gw._t_pkt = 1000
    run(gw, hw, p, 200)
    last = [f for f in hw.chip.frames if f[0] == 0x35C][-1]
    assert last[1][0] == 0x00                          # no charge, no discharge enable
    assert gw.stops == 1


def test_no_ack_then_abort_old_frames():
    hw, gw, p = make()
    hw.chip.ack = False
    run(gw, hw, p, 3000)
    assert hw.chip.pending() == 3 and gw.can.full > 0
    assert gw.tx_busy()


def test_safe_silences_the_controller():
    hw, gw, p = make()
    run(gw, hw, p, 2000)
    n = len(hw.chip.frames)
    gw.safe()
    run(gw, hw, p, 3000)
    assert len(hw.chip.frames) == n
    assert hw.chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_CONFIG


def test_unknown_profile_is_refused():
    hw = FakeHw()
    try:
        gateway.Gateway(hw, Bd, profile="nope")
    except ValueError:
        return
    raise AssertionError("no error")


def test_cycle_allocates_nothing():
    hw, gw, p = make()
    hw.chip.record = False
    run(gw, hw, p, 2000)
    pkt = p.packet()
    rx = hw.extin_rx

    def one():
        for i in range(len(pkt)):
            gw.dec.feed(pkt[i])
        gw.dec.gap()
        gw.tick(100)
        gw.cycle(1000)
        gw.poll()
    assert no_alloc(one)
    assert rx.q == []


class _M:
    """A fake machine module for hal.board.make_hw(board_def, "gateway")."""

    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    SOFT_RESET = 5

    def __init__(self):
        self.chip, self.spi_obj, _cs = fake_mcp2515.make()
        m = self
        self.pins = {}
        self.uarts = []

        class Pin:
            OUT = 1
            IN = 0

            def __init__(self, pid, mode=-1, value=None):
                self.id = pid
                self.level = 1 if value is None else value
                m.pins[pid] = self

            def value(self, v=None):
                if v is None:
                    return self.level
                self.level = v
                if self.id == m.cs_pin:
                    m.chip.select(v == 0)

        class SPI:
            def __init__(self, spi_id, **kw):
                m.spi_kw = kw

            def write(self, buf):
                m.spi_obj.write(buf)

            def write_readinto(self, tx, rx):
                m.spi_obj.write_readinto(tx, rx)

        class UART:
            INV_TX = 1
            INV_RX = 2

            def __init__(self, uid, **kw):
                m.uarts.append((uid, kw))

            def any(self):
                return 0

        self.Pin = Pin
        self.SPI = SPI
        self.UART = UART
        self.cs_pin = None

    def reset_cause(self):
        return 1


class _Time:
    @staticmethod
    def ticks_us():
        return 0

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    @staticmethod
    def sleep_ms(ms):
        pass


def _root():
    here = __file__
    for _ in range(3):
        here = here.rsplit("/", 1)[0] if "/" in here else "."
    return here


def test_make_hw_builds_the_gateway_from_the_esp32_definition():
    import sys
    if _root() not in sys.path:
        sys.path.append(_root())
    from board_defs import esp32_devkitc as bd
    from hal import board, gateway_hw
    from support import tmpdir
    m = _M()
    m.cs_pin = bd.CAN_CS_PIN
    hw = gateway_hw.make(bd, tmpdir() + "/data", m, time=_Time)
    assert m.uarts[0][0] == bd.EXTIN_UART_ID and m.uarts[0][1]["rx"] == bd.EXTIN_PIN
    assert m.uarts[0][1]["baudrate"] == 9600
    assert m.spi_kw["miso"].id == bd.CAN_MISO_PIN and m.spi_kw["sck"].id == bd.CAN_SCK_PIN
    assert hw.mqtt is None                    # no GW_MQTT_BROKER: MQTT off
    gw = gateway.Gateway(hw, bd)              # brings the controller up through the fake SPI
    assert gw.can_ok and gw.profile_name == "victron"
    assert m.chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_NORMAL
    gw.safe()
    assert m.chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_CONFIG and m.pins[bd.LED_PIN].level == 0
    e = None
    try:
        board.make_hw(bd, "nope", "/tmp", m)
    except board.BoardError as x:
        e = x
    assert e is not None
