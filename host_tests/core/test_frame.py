"""Cut-through frames: aggregates, detail window, CRC poisoning and break positions, through
chains of Forwarder objects (no roles, no timing)."""
from core import codec, crc, frame, options
from core.snapshot import CellStatus, PackSnapshot, SensorFlags
import support

SW = options.word_for(2, 3600)   # 9-16 cells, balance at 3.60 V


def cell_values(n):
    mv = [3300 + (i * 37) % 200 for i in range(n)]
    t = [150 + (i * 13) % 90 - 40 for i in range(n)]
    st = [CellStatus.BALANCING if i % 5 == 0 else 0 for i in range(n)]
    return mv, t, st


def make_chain(n):
    mv, t, st = cell_values(n)
    fws = []
    for i in range(n):
        fw = frame.Forwarder()
        fw.set_own(mv[i], t[i], st[i])
        fws.append(fw)
    return fws, mv, t, st


def run(fws, w, win, seq=1, corrupt=None, s1=-12345, s2=250000):
    """Begin (fws[0]) originates; each later board forwards byte by byte. corrupt(k, i, b)
    may change byte i on the link into board k (returns the byte, or None to drop it).
    Returns the list of frames as received by each board (index k = input of board k)."""
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, w, seq, SW, 0, win, s1, 0x01, s2, 0x03)
    stream = [buf[i] for i in range(n)]
    seen = [stream]
    for k, fw in enumerate(fws):
        outs = []
        for i, b in enumerate(stream):
            if corrupt is not None and k > 0:
                b = corrupt(k, i, b)
                if b is None:
                    continue
            o = fw.byte(b)
            if o >= 0:
                outs.append(o)
        if fw.gap():
            while fw.in_frame():
                fw.byte(codec.FRAMING)      # finished here, not sent (roles.LinkPort)
        stream = outs
        seen.append(stream)
    return seen


def test_empty_frame_has_valid_crcs_and_length():
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 32, 7, SW, 0, 1)
    assert n == frame.MAX_FRAME == 198
    assert crc.crc16(buf, 0, frame.O_CRC_A) == frame.u16(buf, frame.O_CRC_A)
    assert crc.crc16(buf, frame.O_BRK, n - 2) == frame.u16(buf, n - 2)
    assert frame.window_size(16) == 16 and frame.window_size(255) == 32
    assert frame.windows(255) == 8 and frame.windows(32) == 1 and frame.windows(80) == 3


def test_aggregates_detail_and_positions_16():
    fws, mv, t, st = make_chain(16)
    run(fws, 16, 1)
    end = fws[-1]
    assert end.a_result == frame.OK and end.b_result == frame.OK
    assert [fw.pos for fw in fws] == list(range(1, 17))
    snap = PackSnapshot()
    frame.apply_a(end.out, snap)
    assert snap.cell_count == 16 and snap.seq == 1
    assert (snap.cells_min, snap.cells_max, snap.switch_vbal_mv) == (9, 16, 3600)
    assert snap.min_mv == min(mv) and snap.min_mv_cell == mv.index(min(mv)) + 1
    assert snap.max_mv == max(mv) and snap.max_mv_cell == mv.index(max(mv)) + 1
    assert snap.min_temp_dc == min(t) and snap.min_temp_cell == t.index(min(t)) + 1
    assert snap.max_temp_dc == max(t) and snap.max_temp_cell == t.index(max(t)) + 1
    assert snap.pack_mv == sum(mv)
    assert snap.any_balancing and not snap.any_error and snap.break_position == 0
    assert snap.s1_ma == -12345 and snap.s1_flags == 1 and snap.s2_ma == 250000 and snap.s2_flags == 3
    assert snap.volt_fault_at == 0 and end.out[frame.O_FAULT] == 0
    assert frame.apply_b(end.out, end.w, 16, snap) == 0
    for i in range(16):
        assert snap.cell_mv[i] == mv[i] and snap.cell_temp_dc[i] == t[i]
        assert snap.cell_status[i] == st[i] and snap.cell_age[i] == 0


def test_window_covers_only_its_slots_and_ties_keep_first():
    fws = []
    for _i in range(40):
        fw = frame.Forwarder()
        fw.set_own(3500, 200, 0)          # all equal: the lowest position must win
        fws.append(fw)
    fws[37].set_own(3499, -55, CellStatus.TEMP_SENSOR_FAULT)
    run(fws, 32, 33)
    snap = PackSnapshot()
    end = fws[-1]
    frame.apply_a(end.out, snap)
    assert snap.min_mv == 3499 and snap.min_mv_cell == 38
    assert snap.max_mv == 3500 and snap.max_mv_cell == 1
    assert snap.min_temp_cell == 1 and snap.min_temp_dc == 200   # faulted sensor left out
    assert snap.any_error
    frame.apply_b(end.out, end.w, 40, snap)
    assert snap.cell_age[31] == 255 and snap.cell_age[32] == 0 and snap.cell_age[39] == 0
    assert snap.cell_temp_dc[37] == -55 and snap.cell_status[37] == CellStatus.TEMP_SENSOR_FAULT


def test_pack_sum_carries_for_255_cells_and_extremes():
    fws = []
    for i in range(255):
        fw = frame.Forwarder()
        fw.set_own(65535 if i == 3 else 4999, -400 if i == 7 else 1200, 0)
        fws.append(fw)
    run(fws, 32, 1)
    snap = PackSnapshot()
    frame.apply_a(fws[-1].out, snap)
    assert snap.cell_count == 255
    assert snap.pack_mv == 254 * 4999 + 65535
    assert snap.max_mv_cell == 4 and snap.min_temp_dc == -400 and snap.min_temp_cell == 8


def flip(target_k, target_i, mask=0x04):
    def corrupt(k, i, b):
        return b ^ mask if (k == target_k and i == target_i) else b
    return corrupt


def test_corruption_in_section_a_is_located_by_brk():
    for i in (0 + 2, frame.O_COUNT, frame.O_MIN_MV, frame.O_PACK + 1, frame.O_CRC_A + 1):
        fws, _, _, _ = make_chain(16)
        run(fws, 16, 1)                                     # boards know their positions
        run(fws, 16, 1, corrupt=flip(9, i))
        for k in range(9):
            assert fws[k].a_result == frame.OK
        assert fws[9].a_result == frame.BAD
        for k in range(10, 16):
            assert fws[k].a_result == frame.POISONED      # never accepted downstream
        end = fws[-1]
        assert end.b_result == frame.OK
        assert end.out[frame.O_BRK] == 10                  # board 10's input failed


def test_corruption_in_section_b_reported_in_next_frame():
    fws, _, _, _ = make_chain(16)
    run(fws, 16, 1, corrupt=flip(5, frame.O_DETAIL + 7))
    assert fws[5].b_result == frame.BAD and fws[-1].b_result == frame.POISONED
    assert fws[-1].a_result == frame.OK
    run(fws, 16, 1, seq=2)
    end = fws[-1]
    assert end.a_result == frame.OK and end.b_result == frame.OK
    assert end.out[frame.O_LOST] == 6
    run(fws, 16, 1, seq=3)
    assert fws[-1].out[frame.O_LOST] == 0                 # reported once


def test_framing_error_and_truncation_are_marked_at_their_position():
    fws, _, _, _ = make_chain(8)

    def framing(k, i, b):
        return codec.FRAMING if (k == 4 and i == 20) else b
    run(fws, 8, 1, corrupt=framing)
    assert fws[4].a_result == frame.BAD and fws[-1].out[frame.O_BRK] == 5
    fws, _, _, _ = make_chain(8)

    def truncate(k, i, b):
        return None if (k == 3 and i >= 12) else b
    run(fws, 8, 1)
    seen = run(fws, 8, 1, seq=2, corrupt=truncate)
    assert len(seen[-1]) == 12                          # the padding is not sent on
    for k in range(3, 8):                               # every board from the cut on sees it
        assert fws[k].a_result == frame.CUT and fws[k].report_cut
        assert fws[k].out[frame.O_BRK] == 0
    run(fws, 8, 1, seq=3)                               # the first board that saw it reports
    assert fws[-1].a_result == frame.OK and fws[-1].out[frame.O_LOST] == 4
    assert not any(fw.report_cut for fw in fws)
    run(fws, 8, 1, seq=4)
    assert fws[-1].out[frame.O_LOST] == 0


def test_cut_in_section_b_and_cut_reports_upstream_win():
    fws, _, _, _ = make_chain(8)
    run(fws, 8, 1)

    def truncate_b(k, i, b):
        return None if (k == 5 and i >= frame.O_DETAIL + 9) else b
    run(fws, 8, 1, seq=2, corrupt=truncate_b)
    assert fws[5].a_result == frame.OK and fws[5].b_result == frame.CUT
    assert fws[-1].b_result == frame.CUT
    # next frame: cut again further down AND board 3's cut report (position 3) is pending
    fws[2].report_cut = True
    run(fws, 8, 1, seq=3)
    assert fws[-1].out[frame.O_LOST] == 3               # upstream-most report wins
    assert not any(fw.report_cut for fw in fws)         # the others drop theirs


def test_garbage_through_both_sections_still_delivers_brk():
    for start in (frame.O_W + 1, frame.O_LOST, 20, frame.O_CRC_A):
        fws, _, _, _ = make_chain(8)
        run(fws, 8, 1)

        def garbage(k, i, b, start=start):
            return b ^ 0x5A if (k == 4 and i >= start) else b
        run(fws, 8, 1, seq=2, corrupt=garbage)
        assert fws[4].a_result == frame.BAD and fws[4].b_result == frame.BAD
        end = fws[-1]
        assert end.a_result == frame.POISONED           # aggregates never taken
        assert end.b_result == frame.OK and end.out[frame.O_BRK] == 5, start
        assert not fws[4].report_lost                   # reported once, by BRK


def test_two_failed_wires_in_one_frame_report_the_nearer_board():
    # cut-through: a board whose section A failed cannot tell an upstream BRK from garbage
    # in the BRK byte before it has passed on, so it writes its own position (one failed
    # wire at a time is located exactly; of two in the same frame, the one nearer End)
    fws, _, _, _ = make_chain(10)
    run(fws, 10, 1)

    def two(k, i, b):
        if (k == 2 or k == 6) and i == frame.O_MIN_MV:
            return b ^ 0x01
        return b
    run(fws, 10, 1, seq=2, corrupt=two)
    assert fws[2].a_result == frame.BAD and fws[6].a_result == frame.BAD
    assert fws[-1].b_result == frame.OK and fws[-1].out[frame.O_BRK] == 7


def test_sensor_faults_stay_out_of_every_aggregate():
    fws, mv, t, st = make_chain(8)
    fws[2].set_own(65000, t[2], CellStatus.VOLT_SENSOR_FAULT)   # bogus high voltage
    fws[5].set_own(100, t[5], CellStatus.VOLT_SENSOR_FAULT)     # bogus low voltage
    fws[3].set_own(mv[3], -400, CellStatus.TEMP_SENSOR_FAULT)    # bogus cold
    fws[6].set_own(mv[6], 1500, CellStatus.TEMP_SENSOR_FAULT)    # bogus hot
    run(fws, 8, 1)
    snap = PackSnapshot()
    frame.apply_a(fws[-1].out, snap)
    good_mv = [mv[i] for i in range(8) if i not in (2, 5)]
    good_t = [t[i] for i in range(8) if i not in (3, 6)]
    assert snap.max_mv == max(good_mv) and snap.min_mv == min(good_mv)
    assert snap.max_mv_cell not in (3, 6) and snap.min_mv_cell not in (3, 6)
    assert snap.pack_mv == sum(good_mv)                 # not summed either
    assert snap.max_temp_dc == max(good_t) and snap.min_temp_dc == min(good_t)
    assert snap.any_error
    frame.apply_b(fws[-1].out, 8, 8, snap)
    assert snap.cell_mv[2] == 65000 and snap.cell_status[2] & CellStatus.VOLT_SENSOR_FAULT
    # every board faulted: no position, nothing summed
    fws = [frame.Forwarder() for _ in range(3)]
    for fw in fws:
        fw.set_own(3300, 250, CellStatus.VOLT_SENSOR_FAULT | CellStatus.TEMP_SENSOR_FAULT)
    run(fws, 3, 1)
    frame.apply_a(fws[-1].out, snap)
    assert snap.min_mv_cell == 0 and snap.max_mv_cell == 0 and snap.pack_mv == 0
    assert snap.min_temp_cell == 0 and snap.max_temp_cell == 0


def test_fault_at_names_the_first_board_with_a_voltage_fault():
    # FAULT_AT comes after COUNT (a board knows its position) and before CRC_A
    assert frame.O_COUNT < frame.O_FAULT < frame.O_CRC_A and frame.A_LEN == 35
    fws, mv, t, st = make_chain(16)
    fws[9].set_own(4800, t[9], CellStatus.VOLT_SENSOR_FAULT)     # position 10
    fws[12].set_own(100, t[12], CellStatus.VOLT_SENSOR_FAULT)    # position 13: not first
    fws[4].set_own(mv[4], -400, CellStatus.TEMP_SENSOR_FAULT)     # temperature only: no
    seen = run(fws, 16, 1)
    for k in range(16):
        assert fws[k].a_result == frame.OK
        assert seen[k + 1][frame.O_FAULT] == (10 if k >= 9 else 0), k
    snap = PackSnapshot()
    snap.volt_fault_at = 99
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 10 and snap.max_mv_cell != 10
    # the first faulty board heals: the next one takes over in the next frame
    fws[9].set_own(mv[9], t[9], 0)
    run(fws, 16, 1, seq=2)
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 13
    fws[12].set_own(mv[12], t[12], 0)
    run(fws, 16, 1, seq=3)
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 0
    # a board not measured yet names itself too, also as Begin (position 1)
    fws[0] = frame.Forwarder()
    run(fws, 16, 1, seq=4)
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 1
    # 255 cells: the last board (End) with the fault
    fws = []
    for _i in range(255):
        fw = frame.Forwarder()
        fw.set_own(3300, 250, 0)
        fws.append(fw)
    fws[-1].set_own(3300, 250, CellStatus.VOLT_SENSOR_FAULT)
    run(fws, 32, 33)
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 255 and snap.cell_count == 255 and snap.pack_mv == 254 * 3300


def test_sensor_flags_share_one_byte():
    for name in ("PRESENT", "HIGH_RANGE", "FAULT"):
        assert getattr(SensorFlags, name) < 0x10, name      # a nibble each (SENSORS byte)
    buf = bytearray(frame.MAX_FRAME)
    snap = PackSnapshot()
    for f1, f2 in ((0, 0), (0x07, 0), (0, 0x07), (0x05, 0x03), (0x0F, 0x0F)):
        n = frame.build_empty(buf, 4, 1, SW, 0, 1, -1, f1, 2, f2)
        fw = frame.Forwarder()
        fw.set_own(3300, 250, 0)
        for i in range(n):
            fw.byte(buf[i])
        assert fw.a_result == frame.OK
        frame.apply_a(fw.out, snap)
        assert (snap.s1_ma, snap.s1_flags, snap.s2_ma, snap.s2_flags) == (-1, f1, 2, f2)
        assert snap.volt_fault_at == 0


def test_board_without_a_measurement_is_not_data():
    fws, mv, t, _ = make_chain(4)
    fws[2] = frame.Forwarder()                          # constructed, set_own not called yet
    run(fws, 4, 1)
    snap = PackSnapshot()
    frame.apply_a(fws[-1].out, snap)
    assert snap.pack_mv == mv[0] + mv[1] + mv[3] and snap.any_error
    assert 3 not in (snap.min_mv_cell, snap.max_mv_cell, snap.min_temp_cell, snap.max_temp_cell)
    frame.apply_b(fws[-1].out, 4, 4, snap)
    assert snap.cell_status[2] == frame.NOT_MEASURED
    frame.apply_a(fws[-1].out, snap)
    assert snap.volt_fault_at == 3
    assert snap.cell_status[2] & CellStatus.VOLT_SENSOR_FAULT and snap.cell_status[2] & CellStatus.TEMP_SENSOR_FAULT


def test_break_position_holds_until_a_complete_frame():
    fws, _, _, _ = make_chain(4)
    run(fws, 4, 1)
    out = fws[-1].out
    snap = PackSnapshot()
    snap.break_position = 3
    frame.apply_a(out, snap)
    assert snap.break_position == 3                     # LOST_AT 0 alone does not clear it
    out[frame.O_BRK] = 2
    frame.apply_b(out, 4, 4, snap)
    assert snap.break_position == 3                     # BRK is the caller's to store
    out[frame.O_BRK] = 0
    out[frame.O_LOST] = 2
    frame.apply_a(out, snap)
    assert snap.break_position == 2
    frame.apply_b(out, 4, 4, snap)
    assert snap.break_position == 2                     # not complete: LOST_AT set
    out[frame.O_LOST] = 0
    frame.apply_b(out, 4, 4, snap)
    assert snap.break_position == 0                     # complete frame clears it


def test_garbage_before_frame_is_skipped_until_gap():
    fw = frame.Forwarder()
    fw.set_own(3300, 250, 0)
    assert fw.byte(0x12) == -1 and fw.byte(frame.SYNC) == -1   # SYNC inside garbage ignored
    fw.gap()
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 2, 1, SW, 0, 1)
    outs = [fw.byte(buf[i]) for i in range(n)]
    assert outs[0] == frame.SYNC and fw.b_result == frame.OK and fw.pos == 1
    assert fw.byte(0x00) == -1


def test_forwarding_allocates_nothing():
    fw = frame.Forwarder()
    fw.set_own(3456, -12, CellStatus.BALANCING | CellStatus.VOLT_SENSOR_FAULT)
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 32, 1, SW, 5, 1, -5000, 1, 7000, 1)
    snap = PackSnapshot()

    def one_frame():
        i = 0
        while i < n:
            fw.byte(buf[i])
            i += 1
        fw.gap()
        frame.apply_a(fw.out, snap)
        frame.apply_b(fw.out, 32, 10, snap)

    assert support.no_alloc(one_frame, 20)
    assert fw.b_result == frame.OK and snap.cell_mv[5] == 3456 and snap.volt_fault_at == 6
    assert support.no_alloc(lambda: fw.set_own(3300, 100, 0))
    assert support.no_alloc(lambda: frame.build_empty(buf, 32, 9, SW, 0, 1, -70000, 0, 0, 0))


def test_cut_frame_and_its_report_allocate_nothing():
    fw = frame.Forwarder()
    fw.set_own(3456, -12, 0)
    fw.good_pos = 5
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 32, 1, SW, 4, 1)

    def cut_then_whole():
        i = 0
        while i < 50:                       # cut inside section B
            fw.byte(buf[i])
            i += 1
        if fw.gap():
            while fw.in_frame():
                fw.byte(codec.FRAMING)
        i = 0
        while i < n:                        # next frame carries the report
            fw.byte(buf[i])
            i += 1
        fw.gap()

    assert support.no_alloc(cut_then_whole, 20)
    assert fw.out[frame.O_LOST] == 5 and fw.a_result == frame.OK and not fw.report_cut
