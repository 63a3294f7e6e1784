"""Roles on the link: begin (originates), between (forwards), end (assembles the snapshot).

Each role module has ``make(hw, board_def)`` returning an object with ``cycle(dt_ms)`` (one
frame slot), ``poll()`` (drain received characters: the byte path), ``tick(dt_ms)`` (LED and
button timing, and the time base of ``FrameClock``), ``safe()`` and ``cycle_ms``. Between and
End are frame-clocked: they also have ``cycle_due()``, and the board loop runs their cycle when
it says so (right after a frame has passed them, or on the fallback timer while upstream is
silent) instead of on a timer of their own. The shared link plumbing lives here, and so does
every timeout counted in frames (``FrameClock``, docs/architecture.md "Time").
"""
from micropython import const

from core import codec, crc, frame

_DEFAULT_CYCLE_MS = const(1000)
_DEFAULT_BAUD = const(9600)
_POLL_MAX = const(64)        # characters handled per poll() call (bounded work per wake-up)
_NONE = const(-1)            # core.codec.NONE and GAP, folded here: no lookup per character
_GAP = const(-3)             # (host_tests/core/test_link_port.py checks them)

# ---- time counted in frames: the one place (docs/architecture.md "Time") -------------------------
COMM_TIMEOUT_FRAMES = const(3)   # N: consecutive missing/bad frames before comm is lost
#                                  (End: relays open; Between: no balancing). End takes the
#                                  comm_timeout_cycles setting instead when it has one.
LOST_AFTER_FRAMES = const(2)     # Between: this many slots without a frame start -> originate
MEASURE_LEAD_MS = const(40)      # measure the cell this long before the next frame is due
FRAME_POLL_MS = const(5)         # loop wake-up interval while a frame is due or passing
SLEEP_GUARD_PERMILLE = const(60) # light sleep ends this share of a period before the next frame
#                                  is due: each board's clock within +-3 %, so two boards'
#                                  clocks differ by up to 6 % (the frame may come that early)
_COMM_TIMEOUT_MAX_MS = const(5000)  # core.settings.COMM_TIMEOUT_MAX_MS: no good frame this long
#                                  -> comm lost, whatever the settings and the frame period
_SLOT_MAX = const(255)
_MS_MAX = const(0x3FFFFFFF >> 2)


class FrameClock:
    """When a frame-clocked board (Between, End) runs its cycle, and its timeouts in frames.

    ``period_ms`` is the Begin board's frame period, learnt from the cadence bits of every
    good section A (core.frame.cadence_ms). A cycle is due right after a frame has passed
    (``frame_passed``); with no frame, the fallback timer makes it due 1.25 periods after the
    last cycle, then every period (``wait_ms``). Each cycle is one frame slot (``slot``):
    ``missed`` counts consecutive slots without a good frame, ``silent`` consecutive slots
    without even a frame start. ``tick`` feeds the time (the loop's dt_ms at every wake-up).

    The comm timeout is also kept in milliseconds (``timeout_ms``, 0 = frames only): the End
    sets comm_timeout_cycles x cycle_ms (the settings). ``ok`` turns False when no good frame
    has passed for ``limit_ms()`` = that time, at least 1.25 frame periods actually seen (a
    frame must have been able to come) and never more than _COMM_TIMEOUT_MAX_MS, and the
    fallback timer makes a cycle due by a quarter period after it (at _COMM_TIMEOUT_MAX_MS at
    the latest): counted in slots alone, a setting made for 500 ms frames ran 10 slots of the
    Begin board's 1 s frames (issue 20: relays closed 9 s after a cut).
    """

    def __init__(self, period_ms, timeout_frames=COMM_TIMEOUT_FRAMES):
        self.period_ms = period_ms
        self.timeout_frames = timeout_frames
        self.since_ms = 0           # since the last cycle
        self.since_start_ms = 0     # since the last frame started arriving
        self.passed = False         # a frame has passed since the last cycle
        self.good = False           # ... and checked good (what "good" is: the role's choice)
        self.started = False        # a frame started since the last cycle
        self.missed = timeout_frames    # at power-up: not ok until a good frame arrives
        self.silent = 0             # (upstream gets LOST_AFTER_FRAMES slots to show up)
        self.fallback = False       # the last cycle ran on the timer, not after a frame
        self.measured = False       # the cell was measured for the frame to come
        self.timeout_ms = 0         # comm timeout in ms (0: counted in slots only)
        self.since_good_ms = _MS_MAX    # since the last good frame passed

    def tick(self, dt_ms):
        if self.since_ms < _MS_MAX:
            self.since_ms += dt_ms
        if self.since_good_ms < _MS_MAX:
            self.since_good_ms += dt_ms
        if self.since_start_ms < _MS_MAX:
            self.since_start_ms += dt_ms

    def frame_started(self):
        self.started = True
        self.since_start_ms = 0
        self.measured = False

    def frame_passed(self, good):
        self.passed = True
        if good:
            self.good = True
            self.since_good_ms = 0

    def limit_ms(self):
        """The comm timeout in ms (0: none): ``timeout_ms``, at least 1.25 frame periods (the
        period seen), at most _COMM_TIMEOUT_MAX_MS."""
        t = self.timeout_ms
        if t <= 0:
            return 0
        p = self.period_ms
        p += p >> 2
        if t < p:
            t = p
        return t if t < _COMM_TIMEOUT_MAX_MS else _COMM_TIMEOUT_MAX_MS

    def wait_ms(self):
        """ms until the next cycle is due (0 = now)."""
        if self.passed:
            return 0
        p = self.period_ms
        limit = p if self.fallback else p + (p >> 2)
        w = limit - self.since_ms
        if self.missed < self.timeout_frames:
            t = self.limit_ms()
            if t:
                # the comm deadline: a cycle then, not later. A quarter period after the limit
                # (capped at _COMM_TIMEOUT_MAX_MS), so a frame due at the limit still has its
                # own slot: the deadline adds a slot only when frames stop coming
                t += self.period_ms >> 2
                if t > _COMM_TIMEOUT_MAX_MS:
                    t = _COMM_TIMEOUT_MAX_MS
                d = t - self.since_good_ms
                if d < w:
                    w = d
        return w if w > 0 else 0

    def due(self):
        return self.wait_ms() == 0

    def in_window(self):
        """A frame is due (measured for it) or passing: the loop should look in often."""
        return self.measured or (self.started and not self.passed)

    def measure_in_ms(self):
        """ms until the cell should be measured: MEASURE_LEAD_MS before the next frame is due
        (one period after the last frame started) or, with no frame timing (fallback slots,
        power-up), before the fallback cycle. A large value once measured for this slot."""
        if self.measured:
            return _MS_MAX
        if self.fallback or self.missed >= self.timeout_frames:
            w = self.wait_ms() - MEASURE_LEAD_MS
        else:
            w = self.period_ms - MEASURE_LEAD_MS - self.since_start_ms
        return w if w > 0 else 0

    def sleep_budget_ms(self, wake_ms):
        """ms the board may light-sleep now, deaf, without missing anything: until the next
        frame's measurement or the earliest the next frame can come (SLEEP_GUARD_PERMILLE of
        the period early), less ``wake_ms`` (the wake-up). 0 while the link is not in sync
        (the last slot had no good frame, or ran on the fallback timer), while a frame is due,
        passing or has passed (the cycle is due), and once measured for the next frame."""
        if self.passed or self.started or self.measured or self.fallback or self.missed:
            return 0
        p = self.period_ms
        s = self.since_start_ms
        w = p - MEASURE_LEAD_MS - s
        g = p - (p * SLEEP_GUARD_PERMILLE) // 1000 - s
        if g < w:
            w = g
        w -= wake_ms
        return w if w > 0 else 0

    def slot(self):
        """Start of a cycle: account one frame slot. Returns True when a good frame passed."""
        good = self.good
        if good:
            self.missed = 0
        elif self.missed < _SLOT_MAX:
            self.missed += 1
        if self.started:
            self.silent = 0
        elif self.silent < _SLOT_MAX:
            self.silent += 1
        self.fallback = not self.passed
        self.measured = False
        self.passed = False
        self.good = False
        self.started = False
        self.since_ms = 0
        t = self.limit_ms()
        if t and self.since_good_ms >= t and self.missed < self.timeout_frames:
            self.missed = self.timeout_frames   # no good frame for limit_ms(): lost, as N slots
        return good

    @property
    def ok(self):
        """Fewer than ``timeout_frames`` consecutive slots without a good frame, and (with
        ``timeout_ms``) a good frame within ``limit_ms()`` at the last slot (``slot`` then
        counts ``missed`` up to ``timeout_frames``)."""
        return self.missed < self.timeout_frames

    @property
    def upstream_lost(self):
        return self.silent >= LOST_AFTER_FRAMES


def measure_before_frame(role):
    """A frame-clocked role's tick(): measure the cell MEASURE_LEAD_MS before the next frame
    is due, so the frame carries a reading taken just before it (the cycle after the frame
    then does not measure again: ``role._fresh``). Returns True when it measured."""
    clock = role.clock
    if clock.measured or clock.measure_in_ms() != 0:
        return False
    clock.measured = True
    role._fresh = True
    role.cell.measure(0)
    role._own_due = True
    if not role.fw.in_frame():
        role._set_own()
    return True


def frame_wake_ms(role):
    """How soon a frame-clocked role needs the loop again: LED/button edge, the cycle's fallback
    timer, the measurement before the next frame - whichever comes first; every FRAME_POLL_MS
    while a frame is due or passing (the cycle then runs within FRAME_POLL_MS of its end).
    Between frames the board sleeps (wake-ups bounded: a few per frame period plus the
    window's, instead of one every 5 ms day and night). With an interrupt-driven receiver
    (PIO, soft) the window's wake-ups start when the frame is due and, while it passes, when
    it should have ended: its characters are handled by the receiver's handler."""
    w = role.cell_wake               # the cell's bound wake_in_ms, made once (None: no hint)
    ms = w() if w is not None else 1000
    c = role.clock
    due = c.wait_ms()
    if due < ms:
        ms = due
    if not c.measured:
        m = c.measure_in_ms()
        if m < ms:
            ms = m
    if ms > FRAME_POLL_MS and c.in_window():
        w = FRAME_POLL_MS
        port = role.port
        if port.interrupt_driven:
            # characters are forwarded by the receiver's handler, not by these wake-ups: sleep
            # until the frame is due, or until the frame that is passing should have passed
            # (its length is known from section A; a faster sender: 1/32 margin), then look in
            # every FRAME_POLL_MS (a cut frame's gap, a late frame)
            if c.started:
                fw = port.fw
                q = (fw.length - fw.i) * port.char_us
                q = (q - (q >> 5)) // 1000
            else:
                q = c.period_ms - c.since_start_ms
            if q > w:
                w = q
        if w < ms:
            ms = w
    return ms


def frame_sleep_ms(role, wake_ms):
    """A frame-clocked role's light-sleep budget (hal/loop.py, hal/sleep.py): the clock's
    (``FrameClock.sleep_budget_ms``), bounded by every other reason to wake (frame_wake_ms:
    LED/button edge, fallback timer, measurement) less the wake-up; 0 while a frame of our own
    goes out. The port's 1 ms polling of a receiver without arrival interrupts is not a reason:
    no character can come while the budget lasts."""
    o = getattr(role, "origin", None)      # Between: a frame of its own going out
    if o is not None and o.busy():
        return 0
    ms = role.clock.sleep_budget_ms(wake_ms)
    if ms:
        w = frame_wake_ms(role) - wake_ms
        if w < ms:
            ms = w if w > 0 else 0
    return ms


class Originator:
    """Sends the frames this board originates (Begin every cycle, Between when upstream is
    lost) without blocking the loop: ``start(n)`` adds this board to the frame built in ``buf``
    by ``frame.build_empty(..., with_crc=False)`` (``Forwarder.originate``) and queues it;
    ``pump()`` hands the transmitter what it accepts now (``write_byte`` False = FIFO full),
    computing both CRCs on the way (each is written just before it goes out), and returns; the
    loop calls it at each wake-up until ``busy()`` is False. So the cycle pays for the fields,
    the wake-ups during the frame for the CRCs. No allocation."""

    def __init__(self, fw, tx):
        self.fw = fw
        self.tx = tx
        self.buf = bytearray(frame.MAX_FRAME)
        self.n = 0
        self.i = 0
        self.crc = crc.INIT
        self.sent = 0
        self.queued = 0             # a frame built, to be started by the next pump()

    def start(self, n):
        """Add this board and hand the transmitter the first characters, now."""
        self.queued = 0
        self.n = self.fw.originate(self.buf, n, False)
        self.i = 0
        self.crc = crc.INIT
        if self.tx is None:
            self._finish_crcs()
            self.i = self.n
        self.pump()

    def queue(self, n):
        """Like start, but at the next pump() (the next wake-up): the cycle that built the
        frame stays short, the work is spread over the wake-ups."""
        self.queued = n

    def _finish_crcs(self):
        buf = self.buf
        n = self.n
        c = crc.crc16(buf, 0, frame.O_CRC_A)
        buf[frame.O_CRC_A] = c >> 8
        buf[frame.O_CRC_A + 1] = c & 0xFF
        c = crc.crc16(buf, frame.O_BRK, n - 2)
        buf[n - 2] = c >> 8
        buf[n - 1] = c & 0xFF

    def busy(self):
        return self.queued != 0 or self.i < self.n

    def pump(self):
        """Feed the transmitter; returns the number of characters still to hand over."""
        if self.queued:
            self.start(self.queued)
            return self.n - self.i
        tx = self.tx
        buf = self.buf
        i = self.i
        n = self.n
        c = self.crc
        table = crc.TABLE
        end_a = frame.O_CRC_A
        end_b = n - 2
        while i < n:
            if i == end_a or i == end_b:
                buf[i] = c >> 8
                buf[i + 1] = c & 0xFF
            b = buf[i]
            if not tx.write_byte(b):
                break
            if i < end_a or frame.O_BRK <= i < end_b:
                c = ((c << 8) & 0xFFFF) ^ table[((c >> 8) ^ b) & 0xFF]
            elif i == frame.A_LEN - 1:
                c = crc.INIT
            i += 1
        self.i = i
        self.crc = c
        if i >= n and n:
            self.sent += 1
            self.n = 0
            self.i = 0
        return n - i if i < n else 0


def cycle_ms_of(board_def):
    ms = getattr(board_def, "LINK_CYCLE_MS", _DEFAULT_CYCLE_MS)
    return 500 if ms == 500 else _DEFAULT_CYCLE_MS


def link_baud_of(board_def):
    return getattr(board_def, "LINK_BAUD", _DEFAULT_BAUD)


class LinkPort:
    """Receiver -> Forwarder -> (optional) transmitter, character by character."""

    def __init__(self, rx, tx, on_event, baud=_DEFAULT_BAUD):
        self.rx = rx
        self.char_us = 10000000 // baud   # one character (start, 8 data, stop) on the link
        self.tx = tx
        self.fw = frame.Forwarder()
        self.on_event = on_event        # bound method of the role, called with the event code
        self.rx_chars = 0
        self.framing_errors = 0         # characters the receiver reported as FRAMING
        self.cut_frames = 0             # frames the line went idle in
        self._busy = False
        self._again = False             # a scheduled call found us busy: drain once more
        self._poll_ref = self.poll      # bound method made once: the receiver schedules it
        # receivers that can schedule us on arrival (PIO, soft) get forwarding within a
        # character time; the others (UART) rely on the loop waking often (wake_in_ms)
        self.interrupt_driven = rx is not None and hasattr(rx, "set_handler") and \
            getattr(rx, "interrupt_driven", True)
        if self.interrupt_driven:
            rx.set_handler(self._poll_ref)

    def poll(self):
        """Handle what the receiver has (at most _POLL_MAX characters); returns how many.

        This is the receive handler (the receiver schedules it per character) and the per-
        character path: one call drains every character there is, a data character costs a
        read, ``Forwarder.byte`` and a write, nothing else is looked up. A call that finds the
        port busy (the scheduled handler while the loop is inside poll(), or the other way
        round) leaves a sticky re-check flag: the running drain looks once more before it
        returns, so a character that arrived meanwhile is handled now, not at the next
        character or loop wake-up (the lost wake-up)."""
        rx = self.rx
        if rx is None:
            return 0
        if self._busy:
            self._again = True
            return 0
        fw = self.fw
        tx = self.tx
        n = 0
        self._busy = True
        self._again = False
        try:
            while n < _POLL_MAX:
                ev = rx.read()
                if ev >= 0:
                    n += 1
                    o = fw.byte(ev)
                    if o >= 0 and tx is not None:
                        tx.write_byte(o)
                    if fw.event:
                        self.on_event(fw.event)
                elif ev == _NONE:
                    # _busy off first: a call from now on drains by itself; one that came in
                    # before left _again, so look once more
                    self._busy = False
                    if not self._again:
                        break
                    self._busy = True
                    self._again = False
                else:
                    n += 1
                    self._special(ev)
        finally:
            self._busy = False
            self.rx_chars += n
        return n

    def _special(self, ev):
        """A receiver event that is not a character: the line went idle (GAP) or a character
        with a framing error (FRAMING, passed on as a bad byte)."""
        fw = self.fw
        if ev == _GAP:
            if fw.gap():
                self.cut_frames += 1
                # cut short: finish it here for our own events, but send none of it -
                # downstream sees the same silence and cuts the frame at the same byte,
                # whatever the race between its gap timer and our padding would give
                while fw.in_frame():
                    fw.byte(codec.FRAMING)
                    if fw.event:
                        self.on_event(fw.event)
            return
        if ev == codec.FRAMING:
            self.framing_errors += 1
        o = fw.byte(ev)
        if o >= 0 and self.tx is not None:
            self.tx.write_byte(o)
        if fw.event:
            self.on_event(fw.event)

    def diag_counters(self):
        """Receive counters for diag.show() (allocates: REPL only)."""
        fw = self.fw
        return {"rx_chars": self.rx_chars, "good_frames": fw.frames, "bad_frames": fw.bad_frames,
                "framing_errors": self.framing_errors, "cut_frames": self.cut_frames}

    def wake_in_ms(self, other_ms):
        """How soon the board loop must run again: 1 ms while a receiver without arrival
        interrupts may have characters coming, else other_ms."""
        if self.rx is not None and not self.interrupt_driven:
            return 1
        return other_ms
