"""CAN profiles (both interpreters): byte layouts, 0x351 first, the quirks as rules, the stop
set, no allocation per fill. (host_tests/test_can_dbc.py decodes the same frames with cantools.)"""
from core import canbms, chargelaw, extin
from gwpack import Pack, feed
from support import no_alloc


def setup(profile, cells=None):
    p = Pack(16)
    if cells:
        p.set_cells(cells, [250] * 16)
    dec = extin.ExtInDecoder()
    for _ in range(19):
        feed(dec, p.packet())
    law = chargelaw.ChargeLaw()
    law.update(dec.view, 1000)
    bms = canbms.CanBms(profile)
    bms.fill(dec.view, law)
    return p, dec.view, law, bms


def frame(bms, fid):
    i = list(bms.ids).index(fid)
    return bytes(bms.bufs[i][:bms.dlc[i]])


def le16(b, o, signed=False):
    v = b[o] | (b[o + 1] << 8)
    if signed and v >= 0x8000:
        v -= 0x10000
    return v


def test_profiles_and_order():
    assert canbms.profile_of("victron") == canbms.VICTRON
    assert canbms.profile_of("pylon") == canbms.PYLON
    assert canbms.profile_of("nope") == -1
    for prof in range(4):
        b = canbms.CanBms(prof)
        assert b.ids[0] == 0x351
    assert canbms.CanBms(canbms.PYLON).ids == (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E)
    assert 0x359 not in canbms.CanBms(canbms.PYLON13).ids
    assert 0x35A in canbms.CanBms(canbms.PYLON13).ids and 0x35F in canbms.CanBms(canbms.PYLON13).ids
    v = canbms.CanBms(canbms.VICTRON).ids
    for fid in (0x35A, 0x35E, 0x35F, 0x370, 0x371, 0x372, 0x373, 0x374, 0x375, 0x376, 0x377):
        assert fid in v


def test_0x351_355_356_values():
    p, v, law, bms = setup(canbms.VICTRON)
    f = frame(bms, 0x351)
    assert le16(f, 0) == law.cvl_mv // 100
    assert le16(f, 2, True) == law.ccl_da and le16(f, 4, True) == law.dcl_da
    assert le16(f, 6) == law.dvl_mv // 100
    f = frame(bms, 0x355)
    assert le16(f, 0) == 50 and le16(f, 2) == 97
    f = frame(bms, 0x356)
    assert le16(f, 0) == 16 * 3300 // 10 and le16(f, 2, True) == 0 and abs(le16(f, 4, True) - 250) <= 5


def test_victron_never_cvl_zero():
    p, v, law, bms = setup(canbms.VICTRON)
    law.cvl_mv = 0
    law.dvl_mv = 0
    bms.fill(v, law)
    assert le16(frame(bms, 0x351), 0) >= 1
    law.cvl_mv = 40000
    law.dvl_mv = 48000
    bms.fill(v, law)
    assert le16(frame(bms, 0x351), 0) == 480      # never below the discharge voltage limit


def test_stop_set_victron():
    p, v, law, bms = setup(canbms.VICTRON)
    f = frame(bms, 0x35A)
    assert f[0] & 0x03 == 0x02                     # general alarm inactive
    law.stop(v)
    bms.fill(v, law, stopping=True)
    f = frame(bms, 0x351)
    assert le16(f, 2) == 0 and le16(f, 4) == 0 and le16(f, 0) > 0
    f = frame(bms, 0x35A)
    assert f[0] & 0x03 == 0x01                     # general alarm active
    assert (f[2] >> 6) & 0x03 == 0x01              # BMS internal error active


def test_pylon_name_modules_and_enable_bits():
    p, v, law, bms = setup(canbms.PYLON)
    assert frame(bms, 0x35E) == b"PYLON   "
    f = frame(bms, 0x359)
    assert f[4] == 4                               # 280 Ah / 74 Ah per module, rounded up
    assert f[5:7] == b"PN"
    assert frame(bms, 0x35C)[0] == 0xC0            # charge and discharge enable
    law.stop(v)
    bms.fill(v, law, stopping=True)
    assert frame(bms, 0x35C)[0] == 0x00
    assert frame(bms, 0x359)[1] & 0x08             # system error
    assert canbms.modules(0) == 1 and canbms.modules(74) == 1 and canbms.modules(75) == 2


def test_pylon_cvl_at_pack_with_ccl_zero_when_charge_stops():
    p, v, law, bms = setup(canbms.PYLON)
    p.brain.charge_allowed = False
    dec = extin.ExtInDecoder()
    for _ in range(19):
        feed(dec, p.packet())
    law.update(dec.view, 1000)
    bms.fill(dec.view, law)
    f = frame(bms, 0x351)
    assert le16(f, 2) == 0
    assert le16(f, 0) == dec.view.pack_mv // 100   # Deye: CVL = pack voltage, CCL 0 (not 0.1 V / 0.1 A)
    assert frame(bms, 0x35C)[0] == 0x40            # discharge only


def test_victron_cell_frames():
    cells = [3300] * 16
    cells[11] = 3455
    cells[2] = 3250
    p, v, law, bms = setup(canbms.VICTRON, cells)
    f = frame(bms, 0x373)
    assert le16(f, 0) == 3250 and le16(f, 2) == 3455
    assert abs(le16(f, 4) - 298) <= 1
    assert frame(bms, 0x375) == b"C12     "
    assert frame(bms, 0x374) == b"C3      "
    assert frame(bms, 0x370) + frame(bms, 0x371) == b"cellchain BMS   "


def test_warning_high_voltage_at_target():
    cells = [3400] * 16
    cells[0] = 3605
    p, v, law, bms = setup(canbms.SMA, cells)
    f = frame(bms, 0x35A)
    assert (f[4] >> 2) & 0x03 == 0x01


def test_no_allocation_per_fill():
    p, v, law, bms = setup(canbms.VICTRON)
    assert no_alloc(lambda: bms.fill(v, law))
    p, v, law, bms = setup(canbms.PYLON)
    assert no_alloc(lambda: bms.fill(v, law, True))
