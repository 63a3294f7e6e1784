"""hal.mcp2515 against the register-level fake (both interpreters): bring-up, frames on the
bus byte for byte, three buffers then "full", error-passive and bus-off handling, stop, and no
allocation on the send path."""
import fake_mcp2515
from hal import mcp2515
from support import no_alloc, raises


def driver(xtal=8000000):
    chip, spi, cs = fake_mcp2515.make()
    d = mcp2515.MCP2515(spi, cs, sleep_ms=lambda ms: None, xtal_hz=xtal)
    d.init()
    return chip, d


def test_init_sets_500k_timing_and_normal_mode():
    chip, d = driver()
    assert chip.regs[mcp2515.CNF1] == 0x00 and chip.regs[mcp2515.CNF2] == 0x90 and chip.regs[mcp2515.CNF3] == 0x82
    assert chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_NORMAL
    chip, d = driver(16000000)
    assert chip.regs[mcp2515.CNF2] == 0xF0 and chip.regs[mcp2515.CNF3] == 0x86
    assert d.running


def test_init_fails_loudly_without_a_chip():
    chip, spi, cs = fake_mcp2515.make()
    chip.present = False
    d = mcp2515.MCP2515(spi, cs)
    raises(mcp2515.CanError, d.init)
    assert not d.running
    raises(mcp2515.CanError, mcp2515.MCP2515, spi, cs, None, 12000000)


def test_frames_go_out_as_given():
    chip, d = driver()
    buf = bytearray(b"\x10\x02\xe8\x03\xdc\x05\x30\x02")
    assert d.send(0x351, buf, 8)
    assert d.send(0x35C, bytearray(b"\xc0\x00\x00\x00\x00\x00\x00\x00"), 2)
    assert chip.frames == [(0x351, bytes(buf)), (0x35C, b"\xc0\x00")]
    assert d.sent == 2
    assert not chip.selected


def test_three_buffers_then_full_without_ack():
    chip, d = driver()
    chip.ack = False
    buf = bytearray(8)
    assert d.send(0x351, buf, 8) and d.send(0x355, buf, 6) and d.send(0x356, buf, 6)
    assert not d.send(0x35A, buf, 8)
    assert d.full == 1
    assert chip.pending() == 3
    for _ in range(20):
        chip.bus()
    e = d.check(1000)
    assert e & mcp2515.EFLG_TXEP and d.error_passive == 1 and d.tec == 128
    d.abort()                              # nothing old goes out when the inverter comes back
    assert chip.pending() == 0
    chip.ack = True
    assert d.send(0x351, buf, 8) and chip.frames[-1][0] == 0x351


def test_bus_off_counted_then_reset_after_two_seconds():
    chip, d = driver()
    chip.force_bus_off()
    d.check(1000)
    assert d.bus_off == 1 and d.restarts == 0
    d.check(1000)
    assert d.restarts == 1                 # re-initialised: the fake's reset clears bus-off
    assert d.running and chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_NORMAL
    assert d.check(1000) & mcp2515.EFLG_TXBO == 0


def test_stop_sends_nothing_and_stays_stopped():
    chip, d = driver()
    d.stop()
    assert chip.regs[mcp2515.CANSTAT] & 0xE0 == mcp2515.MODE_CONFIG
    assert not d.send(0x351, bytearray(8), 8)
    d.check(1000)
    assert not d.running and chip.frames == []
    d.init()
    assert d.send(0x351, bytearray(8), 8)


def test_send_and_check_allocate_nothing():
    chip, d = driver()
    chip.record = False
    buf = bytearray(8)

    def run():
        d.send(0x351, buf, 8)
        d.check(100)
    assert no_alloc(run)
    assert chip.delivered > 10
