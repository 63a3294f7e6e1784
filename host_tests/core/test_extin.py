"""The gateway's extended-output reader (both interpreters): every field as the End's own
encoder sends it, framing by gap and checksum, staleness, no allocation per byte."""
from core import alarms, extin
from gwpack import Pack, feed
from support import no_alloc


def test_decodes_what_the_end_sends():
    p = Pack(16)
    cells = [3300] * 16
    cells[4] = 3280
    cells[9] = 3410
    temps = [250] * 16
    temps[2] = 180
    temps[7] = 305
    p.set_cells(cells, temps)
    p.brain.current_ma = 12500
    p.brain.charge_ma = 12500
    p.brain.soc_c = 7550
    dec = extin.ExtInDecoder()
    for _ in range(19):                 # a whole key round (SoH, vnom, cycles, status 2)
        assert feed(dec, p.packet())
    v = dec.view
    assert v.cells == 16
    assert v.max_mv == 3410 and v.max_cell == 10
    assert v.min_mv == 3280 and v.min_cell == 5
    assert v.pack_mv == sum(cells)
    assert v.current_ok and v.current_ma == 12500
    assert abs(v.min_t_dc - 180) <= 5 and v.min_t_cell == 3
    assert abs(v.max_t_dc - 305) <= 5   # 0.857 K steps and v.max_t_cell == 8
    assert v.soc_pct == 76
    assert v.soh_pct == 97
    assert v.vmax_mv == 3700 and v.vmin_mv == 2900 and v.vbal_mv == 3400
    assert v.flags & extin.F_CHARGE_ALLOWED and v.flags & extin.F_LOAD_ALLOWED
    assert v.vnom_mv > 0 and v.capacity_ah() == 280
    assert v.cell(9) == 3410 and v.cell(4) == 3280
    assert dec.fresh()


def test_negative_current_and_no_sensor():
    p = Pack(4)
    p.brain.current_ma = -30000
    dec = extin.ExtInDecoder()
    feed(dec, p.packet())
    assert dec.view.current_ma == -30000
    p.snap.s1_flags = 0
    p.snap.s2_flags = 0
    feed(dec, p.packet())
    assert not dec.view.current_ok and dec.view.current_ma == 0


def test_bad_checksum_cut_packet_and_overrun_are_dropped():
    p = Pack(4)
    dec = extin.ExtInDecoder()
    pkt = bytearray(p.packet())
    pkt[10] ^= 0x01
    assert not feed(dec, pkt)
    assert dec.bad == 1 and dec.view.packets == 0
    assert not feed(dec, p.packet()[:30])
    assert dec.bad == 2
    good = p.packet()
    for x in good:
        dec.feed(x)
    dec.feed(0x55)                       # no gap after a packet: overrun, the packet stays taken
    dec.gap()
    assert dec.view.packets == 1
    assert feed(dec, p.packet())         # in step again after the gap


def test_stale_after_silence_and_on_comm_error():
    p = Pack(4)
    dec = extin.ExtInDecoder()
    assert not dec.fresh()               # nothing heard yet
    feed(dec, p.packet())
    assert dec.fresh()
    dec.tick(1000)
    assert dec.fresh()                   # one packet period
    dec.tick(501)
    assert not dec.fresh()               # > 1.5 s: stale
    feed(dec, p.packet())
    assert dec.fresh()
    p.brain.alarms = alarms.COMM_LOST
    feed(dec, p.packet())
    assert not dec.fresh()               # the End itself says the cells are not heard
    # the packet keeps the last complete chain's N during comm loss (issue 22: readers never see
    # N change); the communication-error flag alone makes the gateway stop trusting it
    assert dec.view.cells == 4 and dec.view.flags & extin.F_COMM_ERROR


def test_no_allocation_per_byte():
    p = Pack(16)
    pkt = p.packet()
    dec = extin.ExtInDecoder()

    def run():
        for i in range(len(pkt)):
            dec.feed(pkt[i])
        dec.gap()
        dec.tick(1000)
    assert no_alloc(run)
    assert dec.view.packets > 0
