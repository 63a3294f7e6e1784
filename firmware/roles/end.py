"""End board (pack plus): receives and checks every frame, adds its own cell as the last
position, assembles core.snapshot.PackSnapshot and runs the pack brain and the relays.

comm_ok (PackSnapshot) is True while fewer than ``comm_timeout_cycles`` (N, counted in frames)
consecutive frame slots went by without a good frame (both sections good, no BRK, originated by
the Begin board; a LOST_AT report of an earlier frame's damage does not make a frame bad; a frame
whose section A checked good but whose section B failed counts too when the slot before had a
whole good frame: the relays act on section A's aggregates, which are fresh in it), and no
good frame has been missing for comm_timeout_cycles x cycle_ms (roles.FrameClock: in ms
against the Begin board's period, 5 s at most); a frame originated by a board whose upstream
went silent makes it False at once; a failing link (a loss after damaged frames) keeps it
False until the link has been clean for a while (``link_slot``, LINK_QUALITY); before the
first complete frame it is LINK_NEVER_UP (no break position). Without a brain the relays
stay off.

Frame-clocked (roles.FrameClock): the cycle (snapshot, brain, relays, extended output, app
stream, state saving) runs right after a frame has passed, outside the frame window; with the
input silent the fallback timer runs it every frame period."""
from array import array

from micropython import const

from core.balance import CHARGE_MIN_MA
from core.current import sensor_ok
from core import alarms as _alarms
from core import frame
from core.snapshot import CellStatus, PackSnapshot
from roles import FrameClock, LinkPort, cycle_ms_of, frame_sleep_ms, frame_wake_ms, link_baud_of, measure_before_frame

_AGE_MAX = const(255)
_NO_BALANCING = _alarms.UNDER_VOLTAGE | _alarms.BALANCE_SWITCH_INVALID  # End cell: no balancing
SERVICE_POLL_MS = const(20)     # wake-up interval for the app transports (BLE, USB) in poll()
# link quality (issue 20: a bad wire switched the relays ~860 times an hour)
_LQ_SLOTS = const(64)            # the figure: slots with a good frame among the last 64
_NOISE_MIN = const(2)            # damaged slots among the last 64 (while up, not part of a loss)
#                                 that make a loss a failing link's (a cut or a dead board: none)
_HOLD_FRAMES = const(600)        # after such a loss, good slots in a row before comm counts again
#                                 (10 min at 1 s frames, 5 min at 500 ms), 4x for each further
_HOLD_MAX_FAILS = const(3)       # one, up to 16x (9600 slots): at most 5 switchings an hour
_FAIL_DECAY_SLOTS = const(3600)  # one failure forgotten per this many slots without a new one
_REPEAT_SLOTS = const(600)      # a clean loss (no damage) this soon after the last loss is a
#                                 failing link's too: a loose connector that comes and goes
#                                 (10 min at 1 s frames: a loss every 10 min is <= 6 closings an hour)
_GRACE_SLOTS = const(1)          # the slot after a recovery does not count as damage (the LOST_AT
#                                 report of the cut itself; the recovery slot never does)
_CAP = const(0x3FFF)


# link_slot's counters: one small array, not an attribute each (the End's boot heap)
_I = const(0)           # ring index
_GOOD = const(1)        # slots with a good frame among the last _LQ_SLOTS
_NOISE = const(2)       # damaged slots among them
_RUN = const(3)         # consecutive slots without a good frame
_CLEAN = const(4)       # consecutive slots with one
_FAILS = const(5)       # failing-link losses not yet forgotten (0.._HOLD_MAX_FAILS)
_SINCE = const(6)       # slots since the last one
_GRACE = const(7)
_FLAGS = const(8)       # _HOLD | _UP | _EVER
_LOSS = const(9)        # slots since the last loss of any kind (_CAP: none yet)
_HOLD = const(1)
_UP = const(2)          # comm (the link's own rule) was ok at the last slot
_EVER = const(4)
_LQ_LEN = const(10)


def link_slot(a, ring, good, full, bad, ok):
    """Link quality in frame slots, one call per End cycle (clock-free, allocation-free): ``a``
    the counters (array "H" of _LQ_LEN: _GOOD, _NOISE, ... _FLAGS), ``ring`` the last
    _LQ_SLOTS slots (bit 0 a good frame, bit 1 damage).

    ``a[_GOOD]``: slots with a good frame among the last _LQ_SLOTS (the figure in diag, ``ST:``
    and the CLI). ``a[_NOISE]``: slots among them with damage - while the link was up, a frame
    that was not whole (a CRC failed on this board's input or upstream, a section B lost, a
    slot missed) without that becoming a loss; while it was down, a CRC failure on this
    board's input (a cut brings silence or frames started below it, not damage). A loss
    (comm lost after being up) with _NOISE_MIN or more damaged slots is a failing link's:
    _HOLD then keeps comm lost (relays open, LINK_QUALITY) until _HOLD_FRAMES << 2 * (fails -
    1) good slots in a row. So does a loss within _REPEAT_SLOTS of the one before (a loose
    connector: clean breaks that come and go). A single loss without damage before it (a wire
    cut, a board without power) recovers as before, in ENABLE_SAMPLES frames. _EVER: a complete frame came through
    since boot (before that, LINK_NEVER_UP: no position is known).

    One frame slot: ``good`` a good frame passed, ``full`` a whole one (no section lost,
    no LOST_AT report), ``bad`` a CRC failed on this board's input, ``ok`` the link's comm
    rule (FrameClock.ok) after this slot."""
    f = a[_FLAGS]
    up = f & _UP
    i = a[_I]
    old = ring[i]
    v = 0
    if good:
        v = 1
        f |= _EVER
        a[_RUN] = 0
        if a[_CLEAN] < _CAP:
            a[_CLEAN] += 1
    else:
        a[_CLEAN] = 0
        if a[_RUN] < _CAP:
            a[_RUN] += 1
    noise = a[_NOISE]
    if (up and ok and not a[_GRACE] and not full) or (not up and not ok and bad):
        v |= 2      # damage while up, or frames arriving damaged while down (a cut: none)
    elif ok and not up:
        # the recovery: the frame cut by the repair, in the slot before, was not damage
        j = (i - 1) % _LQ_SLOTS
        x = ring[j]
        if x & 2:
            ring[j] = x & 1
            noise -= 1
    ring[i] = v
    a[_GOOD] += (v & 1) - (old & 1)
    noise += (v >> 1) - (old >> 1)
    a[_I] = (i + 1) % _LQ_SLOTS
    if up and not ok:
        # a loss: the slots it took to be noticed are the loss, not damage
        k = a[_RUN] if a[_RUN] < _LQ_SLOTS else _LQ_SLOTS
        j = i
        while k > 0:
            x = ring[j]
            if x & 2:
                ring[j] = x & 1
                noise -= 1
            j = (j - 1) % _LQ_SLOTS
            k -= 1
        if noise >= _NOISE_MIN or a[_LOSS] < _REPEAT_SLOTS:
            if a[_FAILS] < _HOLD_MAX_FAILS:
                a[_FAILS] += 1
            a[_SINCE] = 0
            f |= _HOLD
        a[_LOSS] = 0
    elif a[_LOSS] < _CAP:
        a[_LOSS] += 1
    a[_NOISE] = noise
    if not ok:
        a[_GRACE] = _GRACE_SLOTS
        f &= ~_UP
    else:
        if a[_GRACE]:
            a[_GRACE] -= 1
        f |= _UP
    fails = a[_FAILS]
    if f & _HOLD and a[_CLEAN] >= _HOLD_FRAMES << (fails + fails - 2):
        f &= ~_HOLD
    if a[_SINCE] < _CAP:
        a[_SINCE] += 1
    if fails and not f & _HOLD and a[_SINCE] >= _FAIL_DECAY_SLOTS:
        a[_FAILS] = fails - 1
        a[_SINCE] = 0
    a[_FLAGS] = f


class End:
    def __init__(self, hw, board_def, cell, brain=None, outputs=None, comm_timeout_cycles=3, snapshot=None):
        self.hw = hw
        self.cell = cell
        self.cell_wake = getattr(cell, "wake_in_ms", None)   # bound once: no allocation per wake-up
        self.brain = brain
        self._vmax_in_a = getattr(brain, "vmax_in_section_a", None)   # bound once (handler)
        self.outputs = outputs          # optional: outputs.update(snap, brain, dt_ms) each cycle
        self._services_poll = outputs is not None and hasattr(outputs, "poll")
        ms = cycle_ms_of(board_def)
        self.clock = FrameClock(ms, comm_timeout_cycles)
        # the comm timeout in ms: comm_timeout_cycles x the cycle_ms setting (the setters keep
        # it so; the setting is timeout_ms // timeout_frames, no attribute of its own)
        self.clock.timeout_ms = comm_timeout_cycles * ms
        self.snap = snapshot if snapshot is not None else PackSnapshot()
        self.port = LinkPort(hw.link_rx, None, self._on_event, link_baud_of(board_def))
        self.fw = self.port.fw
        self.quiet = comm_timeout_cycles    # slots in which no frame reached our input intact
        self.own_position = 0               # this board's position, learnt from good frames
        self._heard = False
        self._own_bad = False
        self.broken = False
        self.complete_frames = 0
        self._complete = False
        self._a_ok = False
        self._prev_full = False         # the last frame slot had a whole good frame
        self.lq = array("H", bytes(2 * _LQ_LEN))   # link quality (link_slot)
        self.lq[_LOSS] = _CAP
        self.lq_ring = bytearray(_LQ_SLOTS)
        self._own_due = True
        self._fresh = False
        # set by make() on a real board: roles/end_app.EndServices and what it carries
        self.services = None
        self.settings = None
        self.safe()
        # measure now: the first frame we complete (before our first cycle) carries our real
        # cell, not a "not measured yet" slot
        cell.measure(0)
        self._set_own()

    # the End board's cycle_ms setting is the frame period until frames bring the Begin board's
    @property
    def cycle_ms(self):
        return self.clock.period_ms

    @cycle_ms.setter
    def cycle_ms(self, ms):
        c = self.clock
        c.period_ms = ms
        c.timeout_ms = c.timeout_frames * ms

    @property
    def comm_timeout_cycles(self):
        """N: consecutive frame slots without a good frame before comm_ok goes False."""
        return self.clock.timeout_frames

    @comm_timeout_cycles.setter
    def comm_timeout_cycles(self, n):
        c = self.clock
        unit = c.timeout_ms // c.timeout_frames if c.timeout_frames > 0 else c.period_ms
        c.timeout_frames = n
        c.timeout_ms = n * unit           # checked in ms against the frames seen (FrameClock)

    @property
    def app(self):
        """The app protocol (end_app.EndServices.app: built at its first use), None without services."""
        services = self.services
        return None if services is None else services.app

    @property
    def missed(self):
        return self.clock.missed

    @property
    def position(self):
        """This board's chain position (the cell count of the last complete frame; 0 = none yet)."""
        return self.own_position

    def diag_counters(self):
        c = self.port.diag_counters()
        c["complete_frames"] = self.complete_frames
        c["missed_frames"] = self.clock.missed
        c["period_ms"] = self.clock.period_ms
        c["break_position"] = self.snap.break_position
        lq = self.lq
        c["link_good_of_64"] = lq[_GOOD]
        c["link_flags"] = self.snap.link_flags       # core.alarms LINK_QUALITY | LINK_NEVER_UP
        return c

    def _on_event(self, ev):
        fw = self.fw
        snap = self.snap
        out = fw.out
        if ev == frame.EV_START:
            self.clock.frame_started()
        elif ev == frame.EV_A:
            self._a_ok = fw.a_result == frame.OK
            if fw.a_result == frame.BAD:
                self._own_bad = True            # damaged on the wire into this board
            else:
                self._heard = True              # a frame got here (good, or failed upstream)
            if self._a_ok:
                frame.apply_a(out, snap)
                snap.valid = True
                self.clock.period_ms = frame.cadence_ms(out[frame.O_FLAGS])
                fast = self._vmax_in_a
                if fast is not None and fast(snap.max_mv, snap.max_mv_cell):
                    self.hw.set_charge_relay(False)   # V-max: now, not after the detail (issue 12)
                if out[frame.O_FLAGS] & frame.F_LOST:
                    self.broken = True         # chain broken: relays off now, not next cycle
                    snap.comm_ok = False
                    self.hw.set_charge_relay(False)
                    self.hw.set_load_relay(False)
        elif ev == frame.EV_B:
            full = False
            if fw.b_result == frame.BAD:
                self._own_bad = True
            if fw.b_result == frame.OK:
                brk = out[frame.O_BRK]
                if self._a_ok:
                    frame.apply_b(out, fw.w, snap.cell_count, snap)
                    self.cell.frame_seen()
                if brk:
                    snap.break_position = brk
                elif self._a_ok and not out[frame.O_FLAGS] & frame.F_LOST:
                    # good data from the whole chain. A LOST_AT report is about an EARLIER
                    # frame (damaged or cut): kept as break_position, but this frame counts,
                    # so one corrupted byte costs one frame, not two
                    self._complete = True
                    self.broken = False
                    full = True
            elif self._a_ok and self._prev_full and not out[frame.O_FLAGS] & frame.F_LOST:
                # section A (every aggregate the relays act on) checked good and only the
                # detail failed, right after a whole good frame: this frame counts for comm_ok
                # (issue 12: byte errors land in section B twice as often as in A); a second
                # one in a row does not, nor one after a missing or bad frame
                self._complete = True
            self._prev_full = full
            self.clock.frame_passed(self._complete)
            self._a_ok = False
            if self._own_due:
                self._set_own()

    def _set_own(self):
        cell = self.cell
        self.fw.set_own(cell.cell_mv, cell.temp_dc, cell.status)
        self._own_due = False

    def cycle_due(self):
        """For the board loop: a frame has passed, or the fallback timer expired."""
        return self.clock.due()

    def cycle(self, dt_ms):
        """One frame slot: right after a frame passed, or on the fallback timer."""
        cell = self.cell
        snap = self.snap
        clock = self.clock
        good = clock.slot()
        full = good and self._prev_full     # the slot's last frame was whole (link_slot)
        if good:
            self.complete_frames += 1
            self.own_position = snap.cell_count
        else:
            self._prev_full = False
        self._complete = False
        lq = self.lq
        link_slot(lq, self.lq_ring, good, full, self._own_bad, clock.ok and not self.broken)
        if not self._fresh:
            cell.measure(dt_ms)
        self._fresh = False
        if self._heard:
            self.quiet = 0
        elif self.quiet < 255:
            self.quiet += 1
        if self.quiet >= self.comm_timeout_cycles or (self._own_bad and not self._heard):
            # our own input is silent or damaged: the chain is broken on the wire into this
            # board (the boards before it would have reported a break upstream of it)
            snap.break_position = self.own_position
        self._heard = False
        self._own_bad = False
        flags = 0
        lf = lq[_FLAGS]
        if lf & _HOLD:
            flags = _alarms.LINK_QUALITY
        if not lf & _EVER:
            # never a complete frame: the frames that do arrive were started downstream of a
            # link that never came up; their positions (and cell count) are not the chain's
            flags |= _alarms.LINK_NEVER_UP
            snap.break_position = 0
        snap.link_flags = flags
        snap.link_good = lq[_GOOD]
        snap.comm_ok = snap.valid and clock.ok and not self.broken and not lf & _HOLD
        self._age_cells()
        snap.hold()             # the last complete chain, for readers during a break (issue 22)
        brain = self.brain
        hw = self.hw
        if brain is not None:
            brain.update(snap, dt_ms)
            hw.set_charge_relay(brain.charge_allowed)
            hw.set_load_relay(brain.load_allowed)
            hw.set_charge_led(brain.charge_led)
            hw.set_load_led(brain.load_led)
        else:
            hw.set_charge_relay(False)
            hw.set_load_relay(False)
        if self.outputs is not None:
            self.outputs.update(snap, brain, dt_ms)
        vbal = snap.switch_vbal_mv if snap.comm_ok else 0
        if brain is not None and brain.alarms & _NO_BALANCING:
            vbal = 0    # the pack is at V-min, or the switch does not fit the settings
        # balancing only while the pack charges (core/balance.py), by the frame's current as on
        # every other board
        charge = snap.s1_ma if sensor_ok(snap.s1_flags) else -1
        if charge >= 0 and sensor_ok(snap.s2_flags):
            charge -= snap.s2_ma
        cell.balance(vbal, snap.comm_ok, dt_ms, charge >= CHARGE_MIN_MA)
        self._own_due = True
        if not self.fw.in_frame():
            self._set_own()

    def _age_cells(self):
        """One more cycle for every cell's detail; STALE once older than a full window
        rotation plus the comm timeout. The End board's own cell is always fresh."""
        snap = self.snap
        n = snap.cell_count
        # the comm timeout in slots: N, or fewer when its ms (FrameClock.limit_ms) are fewer
        # periods (slots come at least every period): stale within a rotation + 5 s
        c = self.clock
        k = c.timeout_frames
        t = c.limit_ms()
        p = c.period_ms
        if t and p > 0 and (t + p - 1) // p < k:
            k = (t + p - 1) // p
        limit = frame.windows(snap.cells_max) + k
        age = snap.cell_age
        st = snap.cell_status
        for i in range(n):
            a = age[i]
            if a < _AGE_MAX:
                a += 1
                age[i] = a
            if a > limit:
                st[i] |= CellStatus.STALE
        if n:
            cell = self.cell
            k = n - 1
            snap.cell_mv[k] = cell.cell_mv if 0 <= cell.cell_mv <= 0xFFFF else 0
            snap.cell_temp_dc[k] = cell.temp_dc
            st[k] = cell.status
            age[k] = 0

    def poll(self):
        n = self.port.poll()
        outputs = self.outputs
        if outputs is not None and hasattr(outputs, "poll"):
            outputs.poll()
        return n

    def tick(self, dt_ms):
        cell = self.cell
        self.clock.tick(dt_ms)
        measure_before_frame(self)
        cell.tick(dt_ms)
        if cell.take_long_press():
            outputs = self.outputs
            if outputs is not None and hasattr(outputs, "button_press"):
                outputs.button_press(True)
            cell.confirm()
        elif cell.short_press:         # issue 21: the owner window (read here: no new method)
            cell.short_press = False
            outputs = self.outputs
            if outputs is not None and hasattr(outputs, "button_press"):
                outputs.button_press(False)
                cell.confirm()

    def wake_in_ms(self):
        ms = frame_wake_ms(self)
        if self._services_poll and ms > SERVICE_POLL_MS:
            ms = SERVICE_POLL_MS       # BLE / USB app bytes move in poll()
        s = self.services
        x = s.extout if s is not None else None
        if x is not None and x.queued and x.poll_ms < ms:
            ms = x.poll_ms             # its queue into the FIFO, in poll(), while it drains
        return self.port.wake_in_ms(ms)

    def sleep_budget_ms(self, wake_ms):
        """For the board loop: ms it may light-sleep now - never while app transports (BLE,
        USB) or the extended output (its queue: no tx_busy() needed) are served (they need the board awake; a board with BLE on does not light-sleep
        anyway, hal/sleep.py), else its cell side between frames (roles.frame_sleep_ms)."""
        if self._services_poll:
            return 0
        return frame_sleep_ms(self, wake_ms)

    def safe(self):
        hw = self.hw
        hw.set_charge_relay(False)
        hw.set_load_relay(False)
        if hasattr(hw, "set_charge_led"):
            hw.set_charge_led(False)
            hw.set_load_led(False)
        self.cell.safe()


def make(hw, board_def, cell=None, brain=None, outputs=None, comm_timeout_cycles=3):
    """The End role as a board runs it: settings from the data folder, pack brain, app protocol
    on BLE (and USB via usb_app), extended output, persistence (roles/end_app.py)."""
    if cell is None:
        from roles.cell_board import CellBoard
        cell = CellBoard(hw, board_def)
    snap = PackSnapshot()
    services = None
    board_cycle_ms = 0
    if brain is None:
        from roles.end_app import make_services
        s, brain, services = make_services(hw, snap, getattr(hw, "data_dir", "."))
        comm_timeout_cycles = s.comm_timeout_cycles
        if s.is_configured():
            # the End board's cycle (snapshot, brain, extended output, app stream): the setting;
            # the Begin board's LINK_CYCLE_MS sets the frame rate and should match it
            board_cycle_ms = s.cycle_ms
        if outputs is None:
            outputs = services
    role = End(hw, board_def, cell, brain, outputs, comm_timeout_cycles, snap)
    if board_cycle_ms:
        role.cycle_ms = board_cycle_ms
    if services is not None:
        services.role = role
        role.services = services
        role.settings = services.settings
    return role
