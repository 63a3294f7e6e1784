"""Extended output encoder and sender (both interpreters): golden packets written out by hand
from the spec, clamping at every field's limit, round robin and key/value rotation, pacing,
and no allocation per packet."""
from core import alarms, extout, settings
from core.snapshot import CellStatus, PackSnapshot, SensorFlags
from core.version import FIRMWARE_VERSION
from fakes import Brain
from support import no_alloc


def fill(snap, cells_mv, temps_dc):
    """Snapshot of a healthy chain with these cells (min/max computed here, like the receiver)."""
    n = len(cells_mv)
    snap.valid = True
    snap.comm_ok = True
    snap.cell_count = n
    for i in range(n):
        snap.cell_mv[i] = cells_mv[i]
        snap.cell_temp_dc[i] = temps_dc[i]
    lo = min(range(n), key=lambda i: cells_mv[i])
    hi = max(range(n), key=lambda i: cells_mv[i])
    tlo = min(range(n), key=lambda i: temps_dc[i])
    thi = max(range(n), key=lambda i: temps_dc[i])
    snap.min_mv, snap.min_mv_cell = cells_mv[lo], lo + 1
    snap.max_mv, snap.max_mv_cell = cells_mv[hi], hi + 1
    snap.min_temp_dc, snap.min_temp_cell = temps_dc[tlo], tlo + 1
    snap.max_temp_dc, snap.max_temp_cell = temps_dc[thi], thi + 1
    snap.pack_mv = sum(cells_mv)
    snap.s1_flags = SensorFlags.PRESENT
    snap.s2_flags = SensorFlags.PRESENT


def lfp16():
    """Golden state A: 16-cell LiFePO4, 280 Ah, charging, everything normal."""
    snap = PackSnapshot()
    cells = [3300] * 16
    cells[2] = 3280
    cells[8] = 3325
    temps = [250] * 16
    temps[4] = 221
    temps[11] = 263
    fill(snap, cells, temps)
    b = Brain()
    b.charge_allowed = True
    b.load_allowed = True
    b.soc_c = 7550
    b.soc_calibrated = True
    b.charge_ma = 12500
    b.discharge_ma = 3210
    b.current_ma = 9290
    b.energy_in_wh = 1234567
    b.energy_out_wh = 1100400
    b.energy_in_today_wh = 3456
    b.energy_out_today_wh = 1234
    b.stored_wh = 10800
    b.charge_cycles = 300
    b.soh_pct = 98
    s = settings.preset(settings.LIFEPO4)
    s.capacity_ah = 280
    return snap, b, s


# Golden packets, bytes written out by hand from docs/extended-output.md (one field a line).
GOLDEN_A = bytes([
    0x00, 0x29, 0x41,   # pack 52805 mV / 5 mV = 10561
    0x2B, 0x00, 0x64,   # charge '+' 12.5 A / 0.125 = 100
    0x2B, 0x00, 0x1A,   # discharge '+' 3.21 A -> 25.68 -> 26
    0x2B, 0x00, 0x4A,   # battery '+' 9.29 A -> 74.32 -> 74
    0x02, 0x90, 0x03,   # lowest 3280 mV = 656, cell 3
    0x02, 0x99, 0x09,   # highest 3325 mV = 665, cell 9
    0x01, 0x28, 0x05,   # lowest 22.1 degC: 254.1 / 0.857 = 296.499 -> 296, cell 5
    0x01, 0x2D, 0x0C,   # highest 26.3 degC: 258.3 / 0.857 = 301.400 -> 301, cell 12
    0x01, 0x10,         # detail cell 1 of 16
    0x02, 0x94,         # its voltage 3300 mV = 660
    0x01, 0x2C,         # its temperature 25.0 degC: 257 / 0.857 = 299.88 -> 300
    0x03,               # flags: charge + discharge allowed, SoC calibrated
    0x00, 0x0D, 0x80,   # charged today 3456 Wh
    0x00, 0x2A, 0x30,   # stored 10800 Wh
    0x00, 0x04, 0xD2,   # discharged today 1234 Wh
    0x4C,               # SoC 75.50 % -> 76
    0x00, 0x04, 0xD2,   # total charged 1234 kWh (1234567 Wh)
    0x00, 0x04, 0x4C,   # total discharged 1100 kWh (1100400 Wh)
    0x19, 0x62,         # key 0 (+25): SoH 98 %
    0x00, 0x94,         # capacity 280 Ah x 3.3 V x 16 = 14.784 kWh -> 148 x 0.1 kWh
    0x02, 0x44,         # V-min 2900 mV = 580
    0x02, 0xE4,         # V-max 3700 mV = 740
    0x02, 0xA8,         # V-balance 3400 mV = 680
    0x3F,               # checksum
])

GOLDEN_B = bytes([
    0x00, 0x0C, 0xD6,   # pack 16430 mV = 3286
    0x2D, 0x00, 0x08,   # charge sensor '-' 1.0 A = 8
    0x58, 0x00, 0x00,   # discharge sensor absent: 'X'
    0x2D, 0x00, 0x08,   # battery '-' 1.0 A
    0x03, 0x2A, 0x03,   # lowest 4050 mV = 810, cell 3
    0x03, 0x40, 0x01,   # highest 4160 mV = 832, cell 1
    0x01, 0x09, 0x01,   # lowest -5.0 degC: 227 / 0.857 = 264.88 -> 265, cell 1
    0x01, 0x0C, 0x04,   # highest -2.0 degC: 230 / 0.857 = 268.38 -> 268, cell 4
    0x04, 0x04,         # detail cell 4 of 4
    0x03, 0x38,         # 4120 mV = 824
    0x01, 0x0C,         # -2.0 degC = 268
    0xB2,               # flags: discharge allowed, over-voltage, under-temp, SoC not calibrated
    0x00, 0x00, 0x00,   # charged today 0
    0x00, 0x06, 0xD6,   # stored 1850 Wh at 3.7 V = 1750 Wh at the readers' 3.5 V (below)
    0x00, 0x00, 0x11,   # discharged today 17 Wh
    0x63,               # SoC 99.49 % -> 99
    0x00, 0x00, 0x00,   # total charged 999 Wh -> 0 kWh
    0x00, 0x00, 0x00,   # total discharged -5 Wh clamps to 0
    0x29, 0x26,         # key 16 (+25): load relay, below T-min charge, early warning
    0x00, 0x07,         # 50 Ah x 3.7 V x 4 = 0.74 kWh -> 7 (readers: 0.7 kWh / (3.5 V x 4) = 50 Ah)
    0x02, 0xBA,         # V-min 3490 mV = 698
    0x03, 0x3E,         # V-max 4150 mV = 830
    0x03, 0x20,         # V-balance 4000 mV = 800
    0xFC,               # checksum
])

GOLDEN_C = bytes([
    0x00, 0x00, 0x00,   # no cells: pack 0
    0x58, 0x00, 0x00,   # no sensors: 'X' x 3
    0x58, 0x00, 0x00,
    0x58, 0x00, 0x00,
    0x00, 0x00, 0x00,   # lowest/highest voltage 0, cell 0
    0x00, 0x00, 0x00,
    0x00, 0x00, 0x00,   # no valid temperature: raw 0, cell 0
    0x00, 0x00, 0x00,
    0x00, 0x00,         # detail cell 0 of 0 (none)
    0x00, 0x00,
    0x00, 0x00,
    0x84,               # flags: cell communication error, SoC not calibrated; relays off
    0x00, 0x00, 0x00,
    0x00, 0x00, 0x00,
    0x00, 0x00, 0x00,
    0x00,
    0x00, 0x00, 0x00,
    0x00, 0x00, 0x00,
    0x19, 0x64,         # key 0: SoH 100 %
    0x00, 0x00,         # capacity of 0 cells
    0x02, 0x44,         # not-configured defaults 2900 / 3700 / 3400 mV
    0x02, 0xE4,
    0x02, 0xA8,
    0xDF,               # checksum
])


def u16(p, off):
    return (p[off] << 8) | p[off + 1]


def u24(p, off):
    return (p[off] << 16) | (p[off + 1] << 8) | p[off + 2]


def test_goldens_are_consistent():
    for g in (GOLDEN_A, GOLDEN_B, GOLDEN_C):
        assert len(g) == 58
        assert sum(g[:57]) & 0xFF == g[57]


def test_golden_a_normal_charging_pack():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    assert bytes(enc.encode(snap, b, s)) == GOLDEN_A


def test_golden_b_alarms_negative_current_missing_sensor():
    snap = PackSnapshot()
    fill(snap, [4160, 4100, 4050, 4120], [-50, -30, -45, -20])
    snap.s2_flags = 0
    b = Brain()
    b.load_allowed = True
    b.soc_c = 9949
    b.charge_ma = -1000
    b.discharge_ma = 5000
    b.current_ma = -1000
    b.energy_in_wh = 999
    b.energy_out_wh = -5
    b.energy_out_today_wh = 17
    b.stored_wh = 1850
    b.alarms = alarms.OVER_VOLTAGE | alarms.UNDER_TEMP_CHARGE | alarms.EARLY_WARNING
    s = settings.preset(settings.NMC)
    s.capacity_ah = 50
    enc = extout.ExtOutEncoder()
    enc.next_cell = 3
    enc.next_key = 16
    assert bytes(enc.encode(snap, b, s)) == GOLDEN_B


def test_golden_c_no_communication():
    enc = extout.ExtOutEncoder()
    b = Brain()
    b.alarms = alarms.COMM_LOST
    assert bytes(enc.encode(PackSnapshot(), b, settings.Settings())) == GOLDEN_C


def test_checksum_and_length():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    for _ in range(40):
        p = enc.encode(snap, b, s)
        assert len(p) == extout.PACKET_LEN == 58
        assert sum(p[:57]) & 0xFF == p[57]
        assert p[3] in (0x2B, 0x2D, 0x58) and p[6] in (0x2B, 0x2D, 0x58) and p[9] in (0x2B, 0x2D, 0x58)


def test_temperature_formula_matches_vendor_readers():
    for dc in range(-600, 1300, 7):
        r = extout.t_raw(dc)
        exact = (dc / 10 + 232) / 0.857
        assert abs(r - exact) <= 0.5 + 1e-9
        assert abs(r * 0.857 - 232 - dc / 10) <= 0.43  # decodes within half a step
    assert extout.t_raw(-2320) == 0
    assert extout.t_raw(-2321) == 0
    assert extout.t_raw(-30000) == 0
    assert extout.t_raw(559320) == 65535   # just under the top: (55932 + 232) / 0.857 = 65535.6
    assert extout.t_raw(10 ** 9) == 65535


def test_clamping_at_every_field_limit():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    # beyond every field (the pack field is the sum of the cells: 16 x 65535 mV fits)
    for i in range(16):
        snap.cell_mv[i] = 65535
    b.charge_ma = 65535 * 125 + 1000
    b.discharge_ma = -(10 ** 8)
    b.current_ma = 10 ** 9
    snap.min_mv = snap.max_mv = 5 * 65535 + 50
    snap.min_temp_dc = -5000        # below the encodable -232 degC
    snap.max_temp_dc = 700000       # above the top of T16
    b.energy_in_today_wh = 0x1000000
    b.stored_wh = 10 ** 9
    b.energy_out_today_wh = 0xFFFFFF + 1
    b.soc_c = 10500
    b.energy_in_wh = 10 ** 12
    b.energy_out_wh = 0x1000000 * 1000
    p = enc.encode(snap, b, s)
    assert u24(p, 0) == 16 * 13107
    assert (p[3], u16(p, 4)) == (0x2B, 0xFFFF)
    assert (p[6], u16(p, 7)) == (0x2D, 0xFFFF)
    assert (p[9], u16(p, 10)) == (0x2B, 0xFFFF)
    assert u16(p, 12) == 13107 and u16(p, 15) == 13107     # lowest/highest from the cells sent
    assert u16(p, 18) == 0 and u16(p, 21) == 0xFFFF
    assert u24(p, 31) == 0xFFFFFF and u24(p, 34) == 0xFFFFFF and u24(p, 37) == 0xFFFFFF
    assert p[40] == 100
    assert u24(p, 41) == 0xFFFFFF and u24(p, 44) == 0xFFFFFF
    # below every field
    for i in range(16):
        snap.cell_mv[i] = 0
    b.charge_ma = b.discharge_ma = b.current_ma = 0
    snap.min_mv = -1
    b.energy_in_today_wh = b.stored_wh = b.energy_out_today_wh = -100
    b.energy_in_wh = b.energy_out_wh = -(10 ** 6)
    b.soc_c = -300
    p = enc.encode(snap, b, s)
    assert u24(p, 0) == 0 and u16(p, 12) == 0
    assert [p[3], p[6], p[9]] == [0x2B, 0x2B, 0x2B] and u16(p, 4) == u16(p, 7) == u16(p, 10) == 0
    assert u24(p, 31) == u24(p, 34) == u24(p, 37) == u24(p, 41) == u24(p, 44) == 0
    assert p[40] == 0
    # exactly at the current field's top, and a tiny negative current rounds to '+' 0
    b.charge_ma = 65535 * 125
    b.discharge_ma = -62
    p = enc.encode(snap, b, s)
    assert (p[3], u16(p, 4)) == (0x2B, 0xFFFF)
    assert (p[6], u16(p, 7)) == (0x2B, 0)


def test_capacity_clamps_and_never_overflows():
    assert extout.capacity_raw(20000, 5000, 255) == 0xFFFF     # 25500 kWh
    assert extout.capacity_raw(100, 3200, 255) == 816           # 81.6 kWh
    assert extout.capacity_raw(280, 3300, 16) == 148
    assert extout.capacity_raw(280, 3300, 0) == 0
    assert extout.capacity_raw(-5, 3300, 16) == 0
    for ah in (1, 7, 99, 1234, 19999):
        for n in (1, 2, 16, 255):
            want = (ah * 3300 * n * 2 + 100000) // 200000   # round half up
            assert extout.capacity_raw(ah, 3300, n) == min(want, 0xFFFF)


def test_255_cells_count_and_detail():
    snap = PackSnapshot()
    fill(snap, [3300 + (i % 7) for i in range(255)], [200 + (i % 11) for i in range(255)])
    snap.cell_status[254] = CellStatus.TEMP_SENSOR_FAULT
    snap.cell_temp_dc[254] = 9999
    _, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    enc.next_cell = 254
    p = enc.encode(snap, b, s)
    assert p[24] == 255 and p[25] == 255
    assert u16(p, 26) == (3300 + 254 % 7 + 2) // 5
    assert u16(p, 28) == 0      # temperature not data: raw 0
    assert u16(p, 49) == 2356      # 280 Ah x 3.3 V x 255 = 235.62 kWh
    p = enc.encode(snap, b, s)
    assert p[24] == 1


def test_u8_fields_clamp():
    snap, b, s = lfp16()
    snap.min_mv_cell = 300
    snap.max_temp_cell = -4
    b.soh_pct = 250
    b.charge_cycles = 70000
    enc = extout.ExtOutEncoder()
    p = enc.encode(snap, b, s)
    assert 1 <= p[14] <= 16 and 1 <= p[23] <= 16   # cell numbers always within 1..N (issue 22)
    assert (p[47], p[48]) == (25, 100)
    enc.next_key = 8
    p = enc.encode(snap, b, s)
    assert (p[47], p[48]) == (33, 0xFF)
    p = enc.encode(snap, b, s)
    assert (p[47], p[48]) == (34, 0xFF)


def assemble_round(enc, snap, b, s, n_cells):
    """Encode one full cycle (lcm-free: n_cells x 19 packets); check the detail round robin and
    the key rotation; return the value bytes of the first complete round by key."""
    details = []
    keys = []
    values = {}
    for k in range(n_cells * extout.KEYS):
        p = enc.encode(snap, b, s)
        assert 1 <= p[24] <= p[25] == n_cells
        assert u16(p, 26) == (snap.cell_mv[p[24] - 1] + 2) // 5
        details.append(p[24])
        keys.append(p[47] - 25)
        if k < extout.KEYS:
            values[p[47] - 25] = p[48]
    assert details == list(range(1, n_cells + 1)) * extout.KEYS
    assert keys == list(range(extout.KEYS)) * n_cells
    return values


def check_round_values(values, b, s, n_cells):
    assert values[0] == b.soh_pct
    assert values[1] == 100
    vlow = (s.vmin_mv + s.vmin_mv // 50 + 2) // 5   # the brain's early-warning threshold
    assert (values[2] << 8) | values[3] == vlow
    vnom = extout.reader_vnom_mv(s.capacity_ah, s.vnom_mv, n_cells)
    assert abs(vnom - s.vnom_mv) <= s.vnom_mv // 8
    assert (values[4] << 8) | values[5] == (vnom + 2) // 5
    assert values[6] == (FIRMWARE_VERSION[0] << 4) | FIRMWARE_VERSION[1]
    assert values[7] == FIRMWARE_VERSION[2]
    assert (values[8] << 8) | values[9] == b.charge_cycles
    assert (values[10] << 16) | (values[11] << 8) | values[12] == b.energy_in_wh // 1000
    assert (values[13] << 16) | (values[14] << 8) | values[15] == b.energy_out_wh // 1000
    want16 = (0x20 if b.load_allowed else 0) | (0x10 if b.charge_allowed else 0)
    assert values[16] == want16
    assert (values[17] << 8) | values[18] == (s.vbal_mv + 2) // 5


def test_rotation_2_16_255_cells():
    for n in (2, 16, 255):
        snap = PackSnapshot()
        fill(snap, [3000 + 3 * i for i in range(n)], [100 + i for i in range(n)])
        _, b, s = lfp16()
        b.charge_cycles = 0x1234
        b.energy_in_wh = 0x123456 * 1000 + 999
        b.energy_out_wh = 0x0A0B0C * 1000
        enc = extout.ExtOutEncoder()
        values = assemble_round(enc, snap, b, s, n)
        assert sorted(values) == list(range(19))
        check_round_values(values, b, s, n)


def test_vlow_matches_early_warning_threshold():
    s = settings.preset(settings.NMC)
    assert extout.vlow_mv(s) == 3490 + 69
    s = settings.preset(settings.LIFEPO4)
    assert extout.vlow_mv(s) == 2958


def test_cell_count_shrinks_mid_round():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    for _ in range(10):
        enc.encode(snap, b, s)
    fill(snap, [3300, 3301, 3302], [200, 200, 200])
    seen = []
    for _ in range(7):
        p = enc.encode(snap, b, s)
        assert 1 <= p[24] <= p[25] == 3
        seen.append(p[24])
    assert seen == [1, 2, 3, 1, 2, 3, 1]
    snap.clear()
    p = enc.encode(snap, b, s)
    assert (p[24], p[25]) == (0, 0)
    assert p[30] & extout.F_COMM_ERROR


def test_flags_each_bit():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()
    cases = (
        (alarms.UNDER_VOLTAGE, 0x08), (alarms.OVER_VOLTAGE, 0x10),
        (alarms.UNDER_TEMP_CHARGE, 0x20), (alarms.UNDER_TEMP_DISCHARGE, 0x20),
        (alarms.OVER_TEMP, 0x40), (alarms.COMM_LOST, 0x04),
        (alarms.EARLY_WARNING | alarms.BALANCE_HOT | alarms.CURRENT_SENSOR_FAULT, 0x00),
        # faults that open the relays show as the flags a reader acts on
        (alarms.TEMP_SENSOR_FAULT, 0x60), (alarms.VOLT_SENSOR_FAULT, 0x18),
        (alarms.SETTINGS_INVALID, 0x18), (alarms.CELL_COUNT_MISMATCH, 0x04),
    )
    b.charge_allowed = b.load_allowed = False
    for alarm, bit in cases:
        b.alarms = alarm
        assert enc.encode(snap, b, s)[30] == bit
    b.alarms = 0
    b.soc_calibrated = False
    assert enc.encode(snap, b, s)[30] == 0x80
    snap.comm_ok = False
    assert enc.encode(snap, b, s)[30] == 0x84


def test_faulty_sensor_sends_x():
    snap, b, s = lfp16()
    snap.s1_flags = SensorFlags.PRESENT | SensorFlags.FAULT
    snap.s2_flags = SensorFlags.PRESENT | SensorFlags.HIGH_RANGE
    p = extout.ExtOutEncoder().encode(snap, b, s)
    assert (p[3], p[4], p[5]) == (0x58, 0, 0)
    assert p[6] == 0x2B and p[9] == 0x2B
    snap.s2_flags = 0
    p = extout.ExtOutEncoder().encode(snap, b, s)
    assert p[6] == 0x58 and p[9] == 0x58


def test_encode_allocates_nothing():
    snap, b, s = lfp16()
    enc = extout.ExtOutEncoder()

    def one():
        enc.encode(snap, b, s)

    assert no_alloc(one, repeats=60)   # 60 > 19 keys: every key/value branch runs locked
    snap.clear()
    assert no_alloc(one, repeats=20)


class CountingTx:
    """TX fake that keeps no copies (so it can run with the heap locked)."""

    def __init__(self):
        self.writes = 0
        self.last_n = 0
        self.last_sum_ok = False

    def write(self, buf, n):
        self.writes += 1
        self.last_n = n
        self.last_sum_ok = extout.checksum(buf) == buf[57]


class RecordingTx:
    def __init__(self, clock):
        self.clock = clock
        self.log = []

    def write(self, buf, n):
        self.log.append((self.clock[0], bytes(buf[:n])))


def run_sender(dts):
    clock = [0]
    tx = RecordingTx(clock)
    snd = extout.ExtOutSender(tx)
    snap, b, s = lfp16()
    sent = []
    for dt in dts:
        clock[0] += dt
        sent.append(snd.cycle(dt, snap, b, s))
    return tx.log, sent


def check_stream(log):
    """Every write is one whole packet; the line is idle >= 400 ms before every packet."""
    prev_end = 0
    for t, pkt in log:
        assert len(pkt) == 58 and sum(pkt[:57]) & 0xFF == pkt[57]
        assert t - prev_end >= extout.MIN_GAP_MS
        prev_end = t + 60.42


def test_sender_one_packet_per_cycle():
    for cycle in (1000, 500):
        log, sent = run_sender([cycle] * 40)
        assert all(sent) and len(log) == 40
        check_stream(log)
        assert [p[24] for _, p in log[:17]] == list(range(1, 17)) + [1]


def test_sender_quiet_after_boot_and_never_crowds():
    log, sent = run_sender([0, 100, 100, 150])
    assert log == [] and not any(sent)        # 350 ms since boot: not yet
    log, sent = run_sender([100, 100, 100, 100, 100, 300, 200, 300])
    assert sent == [False, False, False, True, False, False, True, False]
    check_stream(log)
    log, sent = run_sender([500, 450, 470, 40, 30000, -5, 0, 1000])  # jitter, stall, bad dt
    check_stream(log)
    assert sent == [True, False, True, False, True, False, False, True]


def test_sender_disabled_sends_nothing_and_allocates_nothing():
    tx = CountingTx()
    snd = extout.ExtOutSender(tx)
    snap, b, s = lfp16()
    snd.enabled = False
    for _ in range(5):
        assert not snd.cycle(1000, snap, b, s)
    assert tx.writes == 0
    snd.enabled = True

    def one():
        snd.cycle(1000, snap, b, s)

    assert no_alloc(one, repeats=30)
    assert tx.writes == 31 and tx.last_n == 58 and tx.last_sum_ok


class BusyTx(CountingTx):
    def __init__(self):
        CountingTx.__init__(self)
        self.is_busy = False

    def busy(self):
        return self.is_busy


def test_sender_waits_while_tx_busy():
    tx = BusyTx()
    snd = extout.ExtOutSender(tx)
    snap, b, s = lfp16()
    assert snd.cycle(1000, snap, b, s) and tx.writes == 1
    tx.is_busy = True
    assert not snd.cycle(1000, snap, b, s) and tx.writes == 1
    tx.is_busy = False
    assert snd.cycle(1000, snap, b, s) and tx.writes == 2


# --- what readers see during faults and on big packs (issue 14) -------------------------------

def test_link_break_keeps_the_chain_and_flags_it_not_the_cells_still_heard():
    """Issue 22: N never changes while it is the same chain (readers rebuild their cell table
    or crash); the last complete chain's values go out with the communication flag."""
    snap, b, s = lfp16()
    snap.hold()                     # the End role holds the complete chain every cycle
    held_pack = sum(snap.cell_mv[:16])
    snap.comm_ok = False            # a break: the End board still has 16 cells, some heard
    snap.cell_count = 9
    snap.cell_mv[2] = 1             # renumbered / partial data must not reach a reader
    b.alarms = alarms.COMM_LOST
    b.charge_allowed = b.load_allowed = False
    enc = extout.ExtOutEncoder()
    seen = set()
    for _ in range(20):
        p = enc.encode(snap, b, s)
        assert p[25] == 16 and 1 <= p[24] <= 16          # same N, detail cell 1..N
        seen.add(p[24])
        assert u24(p, 0) == (held_pack + 2) // 5          # the last trusted pack voltage
        assert [p[3], p[6], p[9]] == [0x58, 0x58, 0x58]  # currents: no value
        assert u16(p, 26) > 0 and u16(p, 26) != 0        # a held value, never 0 V
        assert 1 <= p[14] <= 16 and 1 <= p[17] <= 16 and 1 <= p[20] <= 16 and 1 <= p[23] <= 16
        assert p[30] & 0x07 == extout.F_COMM_ERROR       # relays off, comm error
        assert u16(p, 49) > 0
    assert len(seen) == 16
    enc3 = extout.ExtOutEncoder()
    enc3.next_cell = 2
    assert u16(enc3.encode(snap, b, s), 26) == (snap.held_mv[2] + 2) // 5     # held, not 1 mV
    # communication back: the real values again
    snap.comm_ok = True
    snap.cell_count = 16
    snap.cell_mv[2] = 3300
    b.alarms = 0
    enc.reset()
    p = enc.encode(snap, b, s)
    assert (p[24], p[25]) == (1, 16) and u24(p, 0) == sum((v + 2) // 5 for v in snap.cell_mv[:16])


def test_sender_is_silent_until_the_chain_was_complete_once():
    snap, b, s = lfp16()
    snap.comm_ok = False
    snap.cell_count = 2             # a 99-cell chain forming at boot: never N = 0 or 2
    b.alarms = alarms.COMM_LOST
    clock = [0]
    tx = RecordingTx(clock)
    snd = extout.ExtOutSender(tx)
    for _ in range(5):
        assert not snd.cycle(1000, snap, b, s)
    snap.comm_ok = True
    snap.cell_count = 16
    snap.cell_status[4] = CellStatus.VOLT_SENSOR_FAULT     # a stuck ADC from boot: no pack voltage
    b.alarms = alarms.VOLT_SENSOR_FAULT
    for _ in range(3):
        assert not snd.cycle(1000, snap, b, s)            # never a 0 V pack as the first packet
    snap.cell_status[4] = 0
    b.alarms = 0
    assert snd.cycle(1000, snap, b, s) and tx.log[-1][1][25] == 16


def test_comm_lost_alarm_alone_also_flags_and_keeps_the_count():
    snap, b, s = lfp16()
    snap.hold()
    b.alarms = alarms.COMM_LOST     # the brain's view (e.g. a stale detail) wins over comm_ok
    p = extout.ExtOutEncoder().encode(snap, b, s)
    assert (p[24], p[25]) == (1, 16) and p[30] & extout.F_COMM_ERROR and p[9] == 0x58


def test_stuck_cell_adc_sets_voltage_alarms_and_no_partial_pack():
    snap, b, s = lfp16()
    snap.cell_status[5] = CellStatus.VOLT_SENSOR_FAULT
    snap.volt_fault_at = 6
    b.alarms = alarms.VOLT_SENSOR_FAULT | alarms.SOC_NOT_CALIBRATED
    b.charge_allowed = b.load_allowed = False
    enc = extout.ExtOutEncoder()
    enc.next_cell = 5
    p = enc.encode(snap, b, s)
    assert u24(p, 0) == 0                        # no trusted pack voltage yet: never a partial sum
    assert p[25] == 16 and p[24] == 6 and u16(p, 26) == 0   # the cell's voltage is not data
    snap.held_pack_mv = 52800                    # held from before the fault: never 0 V (the GX
    enc.next_cell = 5                            # takes the pack field as the system voltage)
    p = enc.encode(snap, b, s)
    assert u24(p, 0) == 52800 // 5
    assert p[14] != 6 and p[17] != 6             # lowest/highest from trusted cells only
    assert p[30] & (extout.F_UNDER_VOLTAGE | extout.F_OVER_VOLTAGE) == 0x18
    assert not p[30] & (extout.F_CHARGE_ALLOWED | extout.F_LOAD_ALLOWED)
    p = enc.encode(snap, b, s)                   # the other cells keep their values
    assert p[24] == 7 and u16(p, 26) == (snap.cell_mv[6] + 2) // 5


def test_ntc_fault_sets_temperature_alarms():
    snap, b, s = lfp16()
    snap.cell_status[3] = CellStatus.TEMP_SENSOR_FAULT
    b.alarms = alarms.TEMP_SENSOR_FAULT
    enc = extout.ExtOutEncoder()
    enc.next_cell = 3
    enc.next_key = 16
    p = enc.encode(snap, b, s)
    assert p[30] & (extout.F_UNDER_TEMP | extout.F_OVER_TEMP) == 0x60
    assert u16(p, 28) == 0
    assert p[48] & (extout.S2_BELOW_TMIN_CHARGE | extout.S2_BELOW_TMIN_DISCHARGE) == 0x0C


def test_pack_voltage_is_the_sum_of_the_cells_sent_not_section_a():
    # 255 cells: section A's running sum is one frame newer than the detail (charge start:
    # every cell 10 mV higher there); the packet's pack field must match its own cells
    snap = PackSnapshot()
    cells = [3300 + (i * 7) % 13 for i in range(255)]
    fill(snap, cells, [200] * 255)
    snap.pack_mv = sum(cells) + 255 * 10
    snap.min_mv, snap.max_mv = min(cells) + 10, max(cells) + 24      # section A: a newer frame
    _, b, s = lfp16()
    p = extout.ExtOutEncoder().encode(snap, b, s)
    assert u24(p, 0) == sum((v + 2) // 5 for v in cells)
    # issue 22: lowest/highest from the same cell values as the pack field (one frame)
    assert u16(p, 12) == (min(cells) + 2) // 5 and u16(p, 15) == (max(cells) + 2) // 5
    assert (cells[p[14] - 1] + 2) // 5 == u16(p, 12) and (cells[p[17] - 1] + 2) // 5 == u16(p, 15)


def test_small_packs_read_their_true_ah():
    """The Venus driver: Ah = round(capacity_kwh x 1000 / (vnom from keys 4/5 x N))."""
    for chem in (settings.LIFEPO4, settings.NMC, settings.LTO):
        s = settings.preset(chem)
        for ah in (20, 40, 50, 100, 280):
            for n in range(1, 17):
                vnom = extout.reader_vnom_mv(ah, s.vnom_mv, n)
                raw = extout.capacity_raw(ah, vnom, n)
                vnom_sent = ((vnom + 2) // 5) * 5
                assert abs(vnom - s.vnom_mv) <= s.vnom_mv // 8
                shown = int(raw * 100000 / (vnom_sent * n) + 0.5) if raw else 0
                if ah * s.vnom_mv * n >= 400000000:
                    assert shown == ah, (chem, ah, n, vnom, raw)
                elif shown != ah:
                    # below 0.4 kWh the 0.1 kWh step can be more than 1/8 of the pack: then
                    # the real nominal voltage is kept (no reader can show the true Ah)
                    assert vnom == s.vnom_mv
    # big packs keep the real nominal voltage when readers get the true Ah from it
    assert extout.reader_vnom_mv(280, 3300, 16) == 3300
    assert extout.reader_vnom_mv(100, 3200, 255) == 3200
