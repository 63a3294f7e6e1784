"""The frame is the clock: Between and End run their cycle right after a frame has passed them
(roles.FrameClock), measure just before the next one, count every timeout in frames and learn
the Begin board's cadence from the frame; an isolated bad frame is not a comm loss; originated
frames leave through a non-blocking Originator identical to the byte-by-byte path.
Both interpreters (plain functions, bare asserts)."""
import sys

from core import codec, frame, options
from core.snapshot import CellStatus
from roles import COMM_TIMEOUT_FRAMES, LOST_AFTER_FRAMES, MEASURE_LEAD_MS, FrameClock, Originator
from roles import begin, between, end

try:
    from sim.wire import FakeCell, FakeHw, FakePair, WireRx
except (ImportError, AttributeError):
    sys.path.append("sim")
    from wire import FakeCell, FakeHw, FakePair, WireRx
import support

SW = options.word_for(options.range_code_for_cells(4), 3400)


# ---- Forwarder.originate == the byte-by-byte path ---------------------------------------------

def _own_cases():
    ok = 0
    vf = CellStatus.VOLT_SENSOR_FAULT
    tf = CellStatus.TEMP_SENSOR_FAULT
    return ((3312, 251, ok), (3312, -120, CellStatus.BALANCING), (0, 0, vf | tf), (65535, 250, ok),
            (0, 250, ok), (4100, 900, tf), (3300, 250, vf), (3300, 250, CellStatus.UPSTREAM_LOST),
            (2900, 100, CellStatus.WATCHDOG_RESET | CellStatus.NOT_CALIBRATED))


def _by_bytes(fw, buf, n):
    fw.gap()
    out = bytearray(n)
    for i in range(n):
        o = fw.byte(buf[i])
        out[i] = o
    return out


def test_originate_equals_feeding_the_frame_byte_by_byte():
    cases = 0
    for mv, t, st in _own_cases():
        for w, count, win in ((1, 0, 1), (4, 0, 1), (16, 5, 1), (32, 40, 33), (32, 7, 33), (3, 254, 1)):
            for report in (0, 1, 2):
                for period in (1000, 500):
                    for measured in (True, False):
                        a = frame.Forwarder()
                        b = frame.Forwarder()
                        for fw in (a, b):
                            if measured:
                                fw.set_own(mv, t, st)
                            fw.good_pos = count + 1 if report != 2 else 0
                            fw.report_lost = report == 1
                            fw.report_cut = report == 2
                        src = bytearray(frame.MAX_FRAME)
                        n = frame.build_empty(src, w, 9, SW, count, win, -4200, 1, 123456, 1, period)
                        ref = _by_bytes(a, src, n)
                        fast = bytearray(src)
                        m = b.originate(fast, n)
                        assert m == n
                        assert bytes(fast[:n]) == bytes(ref), (mv, t, st, w, count, win, report)
                        assert (b.pos, b.good_pos, b.report_lost, b.report_cut, b.frames, b.a_result,
                                b.b_result, b.in_frame()) == (a.pos, a.good_pos, a.report_lost,
                                                              a.report_cut, a.frames, a.a_result,
                                                              a.b_result, a.in_frame())
                        cases += 1
    assert cases > 600


def test_originate_allocates_nothing():
    fw = frame.Forwarder()
    fw.set_own(3300, 250, 0)
    buf = bytearray(frame.MAX_FRAME)

    def go():
        n = frame.build_empty(buf, 32, 1, SW, 0, 1, 0, 0, 0, 0, 1000)
        fw.originate(buf, n)

    assert support.no_alloc(go)


# ---- the cadence travels in FLAGS -------------------------------------------------------------

def test_cadence_bits_travel_through_every_board():
    assert frame.cadence_ms(0) == 1000 and frame.cadence_ms(frame.F_CADENCE_500) == 500
    assert frame.cadence_ms(0x20) == 500 and frame.cadence_ms(0x30) == 500   # reserved: early
    assert frame.cadence_ms(frame.F_BALANCING | frame.F_ERROR | frame.F_LOST) == 1000
    for period in (500, 1000):
        buf = bytearray(frame.MAX_FRAME)
        n = frame.build_empty(buf, 4, 1, SW, 0, 1, period_ms=period)
        fws = [frame.Forwarder() for _ in range(3)]
        fws[1].set_own(3300, 250, CellStatus.BALANCING | CellStatus.TEMP_SENSOR_FAULT)
        stream = list(buf[:n])
        for fw in fws:
            stream = [o for o in (fw.byte(b) for b in stream) if o >= 0]
        f = fws[-1].out[frame.O_FLAGS]
        assert fws[-1].a_result == frame.OK and fws[-1].b_result == frame.OK
        assert frame.cadence_ms(f) == period
        assert f & frame.F_BALANCING and f & frame.F_ERROR


# ---- FrameClock -------------------------------------------------------------------------------

def test_frame_clock_due_after_a_frame_else_on_the_fallback_timer():
    c = FrameClock(1000)
    assert not c.ok and c.missed == COMM_TIMEOUT_FRAMES        # at power-up: not ok
    c.tick(1249)
    assert not c.due() and c.wait_ms() == 1
    c.tick(1)
    assert c.due()                                              # 1.25 periods: first fallback
    assert not c.slot()
    c.tick(999)
    assert not c.due()
    c.tick(1)
    assert c.due()                                              # then every period
    c.slot()
    c.frame_started()
    c.tick(120)
    assert not c.due()
    c.frame_passed(True)
    assert c.due() and c.wait_ms() == 0
    assert c.slot() and c.ok and c.missed == 0 and c.silent == 0
    # the next frame is expected one period after this one started: measure just before it
    assert c.measure_in_ms() == 1000 - MEASURE_LEAD_MS - 120
    for k in range(1, COMM_TIMEOUT_FRAMES + 1):
        c.tick(c.wait_ms())
        assert c.due()
        c.slot()
        assert c.missed == k and c.ok == (k < COMM_TIMEOUT_FRAMES)
        assert c.upstream_lost == (k >= LOST_AFTER_FRAMES)


def test_frame_clock_bad_frames_count_as_missed_but_still_clock_the_cycle():
    c = FrameClock(500, 3)
    for _ in range(2):
        c.frame_started()
        c.frame_passed(False)
        assert c.due()
        assert not c.slot()
    assert c.missed == 5 and c.silent == 0 and not c.upstream_lost


# ---- a small pack on an ideal wire: roles driven the way hal/loop.py drives them ---------------

class PackCell(FakeCell):
    def take_long_press(self):
        return False

    short_press = False

    def confirm(self):
        pass


class Pack:
    """Begin -> Between -> End. Per frame period: every board's tick(); Begin's timed cycle
    (its frame goes out), the frame handed on (optionally damaged on the wire into board
    ``bad_at``), each frame-clocked board's poll() and - when cycle_due() - its cycle()."""

    def __init__(self, period=1000, cells=(3300, 3310, 3320)):
        self.period = period
        self.hws = [FakeHw(SW) for _ in range(3)]
        self.cells = [PackCell(mv, 250) for mv in cells]
        self.rx = [None, WireRx(), WireRx()]
        self.sent = [[], []]

        class Tx:
            def __init__(self, out):
                self.out = out

            def write_byte(self, b):
                self.out.append(b)
                return True

        class Def:
            LINK_CYCLE_MS = period

        for k in range(3):
            hw = self.hws[k]
            hw.link_rx = self.rx[k]
            hw.link_tx = Tx(self.sent[k]) if k < 2 else None
        self.begin = begin.Begin(self.hws[0], Def, self.cells[0], FakePair(-4200, 123456))
        self.between = between.Between(self.hws[1], Def, self.cells[1])
        self.end = end.End(self.hws[2], Def, self.cells[2], None, None, 3)
        self.cycles = [0, 0, 0]
        self.corrupt = None            # (board index, byte index, xor)

    def _hand_on(self, k, role):
        out = self.sent[k - 1]
        data = list(out)
        del out[:]
        if self.corrupt is not None and self.corrupt[0] == k:
            i = self.corrupt[1]
            if i < len(data):
                data[i] ^= self.corrupt[2]
        q = self.rx[k].q
        for b in data:
            q.append(b)
        q.append(codec.GAP)
        role.poll()
        if role.cycle_due():
            self.cycles[k] += 1
            role.cycle(self.period)

    def frame(self, begin_alive=True):
        for r in (self.begin, self.between, self.end):
            r.tick(self.period)
        if begin_alive:
            self.begin.cycle(self.period)
            self.begin.poll()
        else:
            del self.sent[0][:]
        for r in (self.between, self.end):
            if r.cycle_due():                     # fallback timer (upstream silent)
                self.cycles[1 if r is self.between else 2] += 1
                r.cycle(self.period)
        self._hand_on(1, self.between)
        self._hand_on(2, self.end)


def test_cycles_follow_the_frames_and_the_cadence_comes_from_begin():
    for period in (1000, 500):
        p = Pack(period)
        p.end.cycle_ms = 1000                    # the End setting: only until frames arrive
        for _ in range(6):
            p.frame()
        assert p.between.clock.period_ms == period and p.end.clock.period_ms == period
        assert p.cycles[1] == 6 and p.cycles[2] == 6      # one cycle per frame, right after it
        snap = p.end.snap
        assert snap.comm_ok and snap.cell_count == 3 and snap.max_mv == 3320
        assert p.end.position == 3 and p.between.position == 2 and p.begin.position == 1


def test_between_section_end_handler_leaves_the_frame_work_to_the_cycle():
    """The handler of a frame's last character runs between two received characters (at board
    speed every ms there is a character time, issue 12): it only notes the frame; the LED flash
    and the balance voltage follow in the cycle the loop runs right after the frame."""
    p = Pack()
    for _ in range(3):
        p.frame()
    cell = p.cells[1]
    seen = cell.frames
    cell.vbal_mv = 0
    for r in (p.begin, p.between, p.end):
        r.tick(p.period)
    p.begin.cycle(p.period)
    p.begin.poll()
    q = p.rx[1].q
    for b in p.sent[0]:
        q.append(b)
    del p.sent[0][:]
    q.append(codec.GAP)
    p.between.poll()                        # the whole frame, section ends included
    assert p.between.fw.frames == 4 and len(p.sent[1]) > 0
    assert cell.frames == seen              # nothing of the frame work in the byte path
    assert p.between.cycle_due()            # ... it is the cycle's, due right now
    p.between.cycle(p.period)
    assert cell.frames == seen + 1 and cell.vbal_mv == 3400 and cell.link_ok


def test_isolated_corrupted_frame_is_not_a_comm_loss_and_costs_one_frame():
    p = Pack()
    for _ in range(4):
        p.frame()
    assert p.end.snap.comm_ok
    done = p.end.complete_frames
    for i in (2, 20, 40, 55):                     # one flipped bit: section A or B
        p.corrupt = (2, i, 0x10)
        p.frame()
        p.corrupt = None
        assert p.end.snap.comm_ok, i              # relays would stay closed
        p.frame()                                 # the report (LOST_AT / BRK) of the damage ...
        assert p.end.snap.comm_ok and p.end.missed == 0, i   # ... rides on a frame that counts
    # a byte in section A costs exactly one frame; an isolated one in section B (i >= 35) none:
    # section A (every aggregate the relays act on) checked good in that frame
    assert p.end.complete_frames == done + 6


def test_isolated_section_b_error_costs_no_frame_and_keeps_the_old_detail():
    p = Pack()
    for _ in range(4):
        p.frame()
    done = p.end.complete_frames
    p.cells[1].cell_mv = 3390                     # the Between's cell rises ...
    p.frame()
    kept = list(p.end.snap.cell_mv[:4])
    p.cells[1].cell_mv = 3395
    p.corrupt = (2, frame.O_DETAIL + 1, 0x40)     # ... and a frame's detail is damaged
    p.frame()
    p.corrupt = None
    assert p.end.snap.comm_ok and p.end.missed == 0
    assert p.end.complete_frames == done + 2
    assert p.end.snap.max_mv == 3395              # section A carried the new maximum
    assert list(p.end.snap.cell_mv[:4]) == kept   # the damaged detail was not applied
    p.frame()
    assert 3395 in list(p.end.snap.cell_mv[:4])


def test_consecutive_section_b_errors_count_as_missed_frames():
    p = Pack()
    for _ in range(4):
        p.frame()
    done = p.end.complete_frames
    for k in range(COMM_TIMEOUT_FRAMES + 2):
        p.corrupt = (2, frame.O_DETAIL + 2, 0x01)
        p.frame()
        # the first failed B still counts; every one after it is a missed frame
        assert p.end.missed == k, k
        assert p.end.snap.comm_ok == (k < COMM_TIMEOUT_FRAMES), k
    assert p.end.complete_frames == done + 1
    p.corrupt = None
    p.frame()
    p.frame()
    assert p.end.snap.comm_ok and p.end.missed == 0
    assert p.between.link_ok


def test_comm_lost_after_n_consecutive_bad_frames():
    p = Pack()
    for _ in range(4):
        p.frame()
    for k in range(1, COMM_TIMEOUT_FRAMES + 1):
        p.corrupt = (1, 10, 0x01)
        p.frame()
        assert p.end.snap.comm_ok == (k < COMM_TIMEOUT_FRAMES), k
    p.corrupt = None
    p.frame()
    assert p.end.snap.comm_ok


def test_silent_begin_between_originates_on_its_fallback_timer():
    p = Pack()
    for _ in range(3):
        p.frame()
    assert p.between.originated == 0
    for _ in range(LOST_AFTER_FRAMES + 1):
        p.frame(begin_alive=False)
    assert p.between.originated >= 1 and p.between.lost
    assert not p.end.snap.comm_ok and p.end.broken        # F_LOST: relays off at once
    for _ in range(3):
        p.frame(begin_alive=False)
    assert not p.between.link_ok                          # no balancing on stale switches


def test_cell_measured_just_before_the_frame_that_carries_it():
    class CountingCell(PackCell):
        def __init__(self, mv):
            PackCell.__init__(self, mv, 250)
            self.measures = []

        def measure(self, dt_ms):
            self.measures.append(self.t)

    p = Pack()
    cell = CountingCell(3310)
    cell.t = 0
    p.between.cell = cell
    p.frame()
    p.frame()
    cell.measures = []
    # time passes in small steps, as loop wake-ups do; the frame starts at t = period
    t = 0
    while t < p.period:
        cell.t = t
        p.between.tick(10)
        t += 10
    assert len(cell.measures) == 1, cell.measures
    assert p.period - MEASURE_LEAD_MS - 20 <= cell.measures[0] <= p.period - MEASURE_LEAD_MS
    n = len(cell.measures)
    p.begin.cycle(p.period)
    p.begin.poll()
    p._hand_on(1, p.between)
    assert len(cell.measures) == n                # the cycle after the frame does not measure again


# ---- the Originator does not block ------------------------------------------------------------

class FifoTx:
    """A transmitter with a small FIFO: write_byte False when full (PioTx, SoftTx)."""

    def __init__(self, depth=8):
        self.depth = depth
        self.fifo = []
        self.wire = []

    def write_byte(self, b):
        if len(self.fifo) >= self.depth:
            return False
        self.fifo.append(b)
        return True

    def shift(self, n):
        for _ in range(min(n, len(self.fifo))):
            self.wire.append(self.fifo.pop(0))


def test_originator_feeds_the_transmitter_between_wake_ups():
    fw = frame.Forwarder()
    fw.set_own(3300, 250, 0)
    tx = FifoTx(8)
    o = Originator(fw, tx)
    n = frame.build_empty(o.buf, 16, 1, SW, 0, 1)
    o.start(n)                                    # returns at once with the FIFO full
    assert o.busy() and len(tx.fifo) == 8 and tx.wire == []
    ref = frame.Forwarder()
    ref.set_own(3300, 250, 0)
    src = bytearray(frame.MAX_FRAME)
    frame.build_empty(src, 16, 1, SW, 0, 1)
    expect = list(_by_bytes(ref, src, n))
    wakeups = 0
    while o.busy():
        tx.shift(3)                               # the line took 3 characters meanwhile
        o.pump()
        wakeups += 1
    tx.shift(8)
    assert tx.wire == expect and o.sent == 1
    assert wakeups >= (n - 8) // 3


class LineTx:
    """A PIO-like transmitter in virtual time (``now[0]``, µs): 8 characters of FIFO, then the
    line at 9600 baud; remembers when each character went onto the line."""
    CHAR_US = 1042
    GAP_US = 3125           # 30 bit times idle: every receiver ends (cuts) the frame

    def __init__(self, now, depth=8):
        self.now = now
        self.depth = depth
        self.free_at = 0
        self.starts = []
        self.data = []

    def write_byte(self, b):
        t = self.now[0]
        waiting = 0
        for s in self.starts:
            if s > t:
                waiting += 1
        if waiting >= self.depth:
            return False
        start = t if t > self.free_at else self.free_at
        self.free_at = start + self.CHAR_US
        self.starts.append(start)
        self.data.append(b)
        return True

    def longest_idle_us(self):
        st = self.starts
        return max([st[i + 1] - st[i] - self.CHAR_US for i in range(len(st) - 1)] + [0])


def test_begin_frame_has_no_gap_whatever_the_cycle_costs_after_building_it():
    """Begin's cycle builds the frame but hands the transmitter nothing: the frame leaves from
    the following 1 ms wake-ups. Had the cycle started it, 8 characters in the FIFO would cover
    only 8 ms of whatever the wake-up still does after that (here 12 ms: the LED, the loop's
    own work, a garbage collection); the line would then idle for more than 30 bit times and
    every receiver would cut the frame (three such in a row: comm lost, relays open - the
    drop the 1 h board-time bench found)."""
    now = [0]

    class SlowAfterFrameCell(PackCell):
        def frame_seen(self):
            PackCell.frame_seen(self)
            now[0] += 12000

    class Def:
        LINK_CYCLE_MS = 1000

    hw = FakeHw(SW)
    hw.link_tx = tx = LineTx(now)
    role = begin.Begin(hw, Def, SlowAfterFrameCell(3300, 250), FakePair(-4200, 123456))
    for k in range(3):
        now[0] = k * 1000000
        del tx.starts[:]
        del tx.data[:]
        tx.free_at = 0
        role.cycle(1000)
        assert tx.data == []                      # the cycle itself sends nothing
        while role.wake_in_ms() == 1:             # busy: the loop wakes every 1 ms
            now[0] += 1000
            role.poll()
        assert tx.longest_idle_us() < LineTx.GAP_US, tx.longest_idle_us()
        rx = frame.Forwarder()
        rx.set_own(3310, 250, 0)
        rx.gap()
        for b in tx.data:
            rx.byte(b)
        assert rx.a_result == frame.OK and rx.b_result == frame.OK
        assert len(tx.data) == frame.frame_len(frame.window_size(4))
    assert role.tx_skipped == 0


def test_originator_allocates_nothing():
    class Sink:
        def write_byte(self, b):
            return True

    fw = frame.Forwarder()
    fw.set_own(3300, 250, 0)
    o = Originator(fw, Sink())

    def go():
        n = frame.build_empty(o.buf, 32, 1, SW, 0, 1)
        o.start(n)

    assert support.no_alloc(go)


def test_end_keeps_waking_for_its_app_transports_between_frames():
    from roles.end import SERVICE_POLL_MS

    class Services:
        def update(self, snap, brain, dt_ms):
            pass

        def poll(self):
            pass

    class IrqRx(WireRx):
        def set_handler(self, fn):
            self.handler = fn

    class Def:
        LINK_CYCLE_MS = 1000

    for services, most in ((None, 1000), (Services(), SERVICE_POLL_MS)):
        hw = FakeHw(SW)
        hw.link_rx = IrqRx(interrupt_driven=True)   # arrival interrupts: no 1 ms polling
        e = end.End(hw, Def, PackCell(3300, 250), None, services, 3)
        e.cycle(1000)
        w = e.wake_in_ms()
        assert w <= most and (services is not None or w > SERVICE_POLL_MS), (services, w)


# ---- light-sleep budget (issue 12 item 6) -------------------------------------------------------

def _synced(period=1000):
    c = FrameClock(period)
    c.frame_started()
    c.tick(120)
    c.frame_passed(True)
    c.slot()                    # the cycle right after a good frame
    return c


def test_sleep_budget_zero_until_in_sync():
    from roles import SLEEP_GUARD_PERMILLE
    c = FrameClock(1000)
    assert c.sleep_budget_ms(2) == 0            # power-up: no good frame yet
    c.tick(1300)
    c.slot()                                    # a fallback slot
    assert c.sleep_budget_ms(2) == 0
    c = _synced()
    # 120 ms since the frame started: sleep until the earlier of the measurement (40 ms before
    # the next frame) and the earliest a 6 % fast Begin's frame can come, less the wake-up
    first = min(1000 - MEASURE_LEAD_MS, 1000 - SLEEP_GUARD_PERMILLE) - 120 - 2
    assert c.sleep_budget_ms(2) == first
    c.tick(100)
    assert c.sleep_budget_ms(2) == first - 100
    c.tick(first - 100)
    assert c.sleep_budget_ms(2) == 0
    assert c.sleep_budget_ms(0) == 2


def test_sleep_budget_zero_in_the_window_and_after_a_bad_frame():
    c = _synced()
    c.measured = True                           # measured for the next frame: stay awake
    assert c.sleep_budget_ms(2) == 0
    c = _synced()
    c.frame_started()                           # a frame is passing
    assert c.sleep_budget_ms(2) == 0
    c.frame_passed(False)                       # ... and it was bad
    assert c.sleep_budget_ms(2) == 0            # cycle due
    c.slot()
    assert c.missed == 1 and c.sleep_budget_ms(2) == 0    # awake for the whole next period
    c.frame_started()
    c.frame_passed(True)
    c.slot()
    assert c.sleep_budget_ms(2) > 800


def test_between_sleep_budget_zero_while_originating():
    hw = FakeHw(SW)
    hw.link_rx = WireRx()

    class Tx:
        def write_byte(self, b):
            return False        # FIFO full: the frame stays queued
    hw.link_tx = Tx()

    class Bd:
        LINK_CYCLE_MS = 1000
    role = between.Between(hw, Bd, FakeCell())
    c = role.clock
    c.frame_started()
    c.frame_passed(True)
    c.slot()
    assert role.sleep_budget_ms(2) > 0
    role.originate()
    assert role.origin.busy() and role.sleep_budget_ms(2) == 0


# ---- issue 20: the comm timeout in ms, against the frame period seen ---------------------------

def _clock_after_good(period_ms, frames, timeout_ms):
    c = FrameClock(period_ms, frames)
    c.timeout_ms = timeout_ms
    c.frame_started()
    c.frame_passed(True)
    assert c.slot() and c.ok
    return c


def test_comm_timeout_in_ms_cannot_be_stretched_by_slow_frames():
    """A setting made for 500 ms frames (10 x 500 = 5 s) with the Begin board's 1 s frames: the
    fallback timer makes a cycle due at the 5 s deadline and that slot is not ok (counted in
    slots it took 10.25 s)."""
    c = _clock_after_good(1000, 10, 5000)
    assert c.limit_ms() == 5000
    t = 0
    while c.ok:
        w = c.wait_ms()
        assert w > 0
        c.tick(w)
        t += w
        c.slot()
    assert t == 5000, t                      # capped: not 5000 + 250


def test_comm_timeout_ms_never_below_a_frame_period_nor_above_5_s():
    c = _clock_after_good(1000, 1, 500)          # 1 x 500 ms with 1 s frames: 1.25 periods
    assert c.limit_ms() == 1250
    c.tick(1000)
    c.frame_started()
    c.frame_passed(True)
    assert c.slot() and c.ok                     # frames 1 s apart are not a comm loss
    c.timeout_ms = 20000
    assert c.limit_ms() == 5000
    c.timeout_ms = 0
    assert c.limit_ms() == 0


def test_comm_deadline_stops_once_expired():
    c = _clock_after_good(500, 10, 5000)
    c.tick(5000)
    c.slot()
    assert not c.ok and c.missed == 10
    assert c.wait_ms() == 500                    # then the fallback period, not a busy loop


def test_end_keeps_the_comm_timeout_in_ms_across_settings_changes():
    p = Pack()
    e = p.end
    assert e.clock.timeout_ms == 3 * 1000
    e.comm_timeout_cycles = 10          # as the settings write them: N, then cycle_ms
    e.cycle_ms = 500
    assert e.clock.timeout_ms == 5000 and e.clock.limit_ms() == 5000
    e.comm_timeout_cycles = 4
    assert e.clock.timeout_ms == 2000
    e.cycle_ms = 1000
    assert e.clock.timeout_ms == 4000 and e.comm_timeout_cycles == 4
