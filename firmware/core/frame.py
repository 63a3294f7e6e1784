"""Link frames, cut-through: every board transforms the frame byte by byte as it flows.

Layout (offsets, multi-byte fields big-endian unless noted; docs/link-protocol.md explains why):

  section A - header and aggregates, checked by CRC_A
   0 SYNC 0xC5           1 W (detail slots 1..32)    2 SEQ        3 SWITCHES (Begin's word)
   4 COUNT (boards that handled it: the sender's position)         5 LOST_AT (0 or position)
   6 WIN (position of detail slot 0)
   7 S1 mA int32, 11 S2 mA int32, 15 SENSORS: S1 flags low nibble, S2 flags high nibble
                                                                  (Begin's current sensors)
  16 FAULT_AT (0, or the position of the first board whose own cell voltage is not data)
  17 MIN_MV u16, 19 its position   20 MAX_MV u16, 22 position
  23 MIN_T u16 (0.1 degC + 0x8000), 25 position   26 MAX_T u16, 28 position
  29 PACK_MV u24 LITTLE-endian (sum; carries flow with the bytes)
  32 FLAGS: bits 0-2 ORed by every board, bits 4-5 the Begin board's frame period (cadence)
  33 CRC_A (over 0..32)
  section B - break report and a window of per-cell detail, checked by CRC_B
  35 BRK (0 or the position whose section-A input failed in this frame)
  36 W slots of 5 bytes: mV u16, temperature u16 (offset), status byte (CellStatus)
  36+5W CRC_B (over 35 .. 36+5W-1)

Each board emits output byte i as soon as input byte i has arrived (one character of delay per
hop). Min/max are compared most-significant byte first (the output byte is decided by the bytes
seen so far); the pack sum is little-endian so the carry travels forward with the data.
Each board re-computes both CRCs over what it sends. It can only check the incoming CRC after
the section has gone on, so when the check fails it POISONS its outgoing CRC (low byte XOR
0xFF): downstream sees syndrome 0xFF = "failed upstream, not on my input" and poisons too, while
any other syndrome means "my own input link failed" - that board writes its position into BRK
(section B, for which it then vouches) or, for a failure in section B, into LOST_AT of its next
frame. A frame cut short (the line went idle) is finished locally and not sent on: every board
downstream sees the same cut, so the first board that saw it reports it in LOST_AT of the next
frame. Readings a board's status marks as sensor faults stay out of the aggregates, and the
first board with a voltage sensor fault (or not measured yet) writes its position into FAULT_AT,
so the End board knows in every frame, not only when that board's detail slot comes round.

Nothing allocates per byte or per frame; ``Forwarder.byte`` is the per-byte path.
"""
from micropython import const

from core import crc as _crc
from core import options as _options
from core.snapshot import CellStatus, SensorFlags

_TABLE = _crc.TABLE   # the CRC table, looked up per byte (inlined crc16_update: no call per byte)

SYNC = const(0xC5)
_MAX_W = const(32)
SLOT_LEN = const(5)

O_W = const(1)
O_SEQ = const(2)
O_SWITCH = const(3)
O_COUNT = const(4)
O_LOST = const(5)
_O_WIN = const(6)
_O_S1 = const(7)
_O_S2 = const(11)
_O_SENS = const(15)     # sensor flags: S1 in bits 0-3, S2 in bits 4-7 (SensorFlags fit a nibble)
O_FAULT = const(16)    # FAULT_AT
O_MIN_MV = const(17)
_O_MAX_MV = const(20)
O_MIN_T = const(23)
O_MAX_T = const(26)
O_PACK = const(29)
O_FLAGS = const(32)
O_CRC_A = const(33)
A_LEN = const(35)
O_BRK = const(35)
O_DETAIL = const(36)
MAX_FRAME = const(198)   # 38 + 5 * _MAX_W

F_BALANCING = const(0x01)   # FLAGS: some board is balancing
F_ERROR = const(0x02)       # some board reported a sensor fault / watchdog reset / upstream loss
F_LOST = const(0x04)        # some board originated this frame because its upstream was lost
_F_CADENCE = const(0x30)     # FLAGS bits 4-5: the Begin board's frame period (cadence_ms)
F_CADENCE_500 = const(0x10)  # code 1 = 500 ms; code 0 = 1000 ms (frames of older firmware)

_ZEROS = bytes(MAX_FRAME)
_POISON = const(0x00FF)
_TEMP_OFFSET = const(0x8000)

# section check results
NONE = const(0)
OK = const(1)
POISONED = const(2)   # failed further upstream (somebody else reported where)
BAD = const(3)        # failed on this board's own input link
CUT = const(4)        # the line went idle before the section ended: every board downstream of
#                       the cut sees the same silence, so the position is reported one frame
#                       later (LOST_AT, by the first board that saw the cut)

NOT_MEASURED = const(0x06)   # status before the first set_own: VOLT_ and TEMP_SENSOR_FAULT

# events left in Forwarder.event by byte()
_EV_NONE = const(0)
EV_START = const(1)
EV_A = const(2)
EV_B = const(3)

_HUNT = const(0)
_SKIP = const(1)
_FRAME = const(2)

_KEEP = const(0)
_TAKE = const(1)
_UNDECIDED = const(2)

_ERR_BITS = const(0x56)  # TEMP_SENSOR_FAULT | VOLT_SENSOR_FAULT | UPSTREAM_LOST | WATCHDOG_RESET


def frame_len(w):
    return 38 + SLOT_LEN * w


def window_size(cells_max):
    """Detail slots per frame for a chain of at most cells_max boards."""
    if cells_max >= _MAX_W:
        return _MAX_W
    return cells_max if cells_max > 0 else 1


def windows(cells_max):
    """Frames (cycles) needed for the window to visit every position 1..cells_max."""
    w = window_size(cells_max)
    n = (cells_max + w - 1) // w
    return n if n > 0 else 1


def temp_enc(temp_dc):
    v = temp_dc + _TEMP_OFFSET
    if v < 0:
        return 0
    return 0xFFFF if v > 0xFFFF else v


def u16(buf, o):
    return (buf[o] << 8) | buf[o + 1]


def s32(buf, o):
    b0 = buf[o]
    if b0 & 0x80:
        b0 -= 256
    return (b0 << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]


def pack_charge_ma(buf):
    """The battery current a section A carries (Begin's sensors, one turn, mA, + = into the
    pack): sensor 1 minus sensor 2, each where it delivered data; -1 when sensor 1 gave none
    (not charging as far as anybody knows). Allocation-free (currents stay small ints)."""
    f = buf[_O_SENS]
    if f & SensorFlags.FAULT or not f & SensorFlags.PRESENT:
        return -1
    ma = s32(buf, _O_S1)
    f >>= 4
    if f & SensorFlags.PRESENT and not f & SensorFlags.FAULT:
        ma -= s32(buf, _O_S2)
    return ma


def _put32(buf, o, v):
    if v > 0x1FFFFFFF:          # keep small ints small (boards box ints beyond 2^30)
        v = 0x1FFFFFFF
    elif v < -0x1FFFFFFF:
        v = -0x1FFFFFFF
    buf[o] = (v >> 24) & 0xFF
    buf[o + 1] = (v >> 16) & 0xFF
    buf[o + 2] = (v >> 8) & 0xFF
    buf[o + 3] = v & 0xFF


def cadence_flags(period_ms):
    """FLAGS bits for a frame period: 500 ms -> F_CADENCE_500, anything else 1000 ms (0)."""
    return F_CADENCE_500 if period_ms == 500 else 0


def cadence_ms(flags):
    """The frame period a FLAGS byte carries: code 0 = 1000 ms (also every older frame),
    1 = 500 ms; the reserved codes 2 and 3 read as 500 ms (a timeout counted in frames then
    runs early, never late)."""
    return 1000 if flags & _F_CADENCE == 0 else 500


def build_empty(buf, w, seq, switches, count, win, s1_ma=0, s1_flags=0, s2_ma=0, s2_flags=0,
                period_ms=1000, with_crc=True):
    """Write a frame nobody has contributed to yet (as if from position ``count``) into buf,
    with valid CRCs; returns its length. ``period_ms``: the originator's frame period, carried
    in FLAGS bits 4-5 (every board ORs its own flags, so the bits travel to End). The
    originator runs it through its own Forwarder to add itself. ``with_crc=False`` leaves the
    CRC fields 0 for ``Forwarder.originate(..., with_crc=False)`` (roles.Originator computes
    them while it hands the bytes to the transmitter). No allocation."""
    n = frame_len(w)
    if len(buf) == MAX_FRAME:
        buf[:] = _ZEROS          # one memory fill (no slice object is allocated for [:])
    else:
        i = 0
        while i < n:
            buf[i] = 0
            i += 1
    buf[0] = SYNC
    buf[O_W] = w
    buf[O_SEQ] = seq & 0xFF
    buf[O_SWITCH] = switches & 0xFF
    buf[O_COUNT] = count
    buf[_O_WIN] = win
    _put32(buf, _O_S1, s1_ma)
    _put32(buf, _O_S2, s2_ma)
    buf[_O_SENS] = (s1_flags & 0x0F) | ((s2_flags & 0x0F) << 4)
    buf[O_MIN_MV] = 0xFF
    buf[O_MIN_MV + 1] = 0xFF
    buf[O_MIN_T] = 0xFF
    buf[O_MIN_T + 1] = 0xFF
    buf[O_FLAGS] = cadence_flags(period_ms)
    if not with_crc:
        return n
    c = _crc.crc16(buf, 0, O_CRC_A)
    buf[O_CRC_A] = c >> 8
    buf[O_CRC_A + 1] = c & 0xFF
    c = _crc.crc16(buf, O_BRK, n - 2)
    buf[n - 2] = c >> 8
    buf[n - 1] = c & 0xFF
    return n


class Forwarder:
    """One board's streaming frame transformer (Between forwards its output, Begin/End use it
    to originate / to receive). Set the board's own values with ``set_own`` before a frame
    arrives; feed every received character to ``byte`` (a byte 0..255 or a negative codec
    error code) and send what it returns (>= 0). After the call ``event`` says whether a
    frame started or a section ended; ``a_result`` / ``b_result`` hold the checks."""

    def __init__(self):
        self.out = bytearray(MAX_FRAME)     # the frame as this board sent it
        self._own = [-1, -1, -1, -1]         # min mv, max mv, min t, max t (-1 = not taking part)
        self._det = bytearray(SLOT_LEN)
        self._det[4] = NOT_MEASURED         # no measurement yet: not data (docs/link-protocol.md)
        self._own_mv = 0                    # what this board adds to PACK_MV (0 = not data)
        self._own_vf = True                 # own voltage not data: FAULT_AT (not measured yet)
        self._own_flags = F_ERROR           # (as set_own gives for NOT_MEASURED)
        self.report_lost = False            # own input failed in section B: LOST_AT of the next frame
        self.report_cut = False             # a frame was cut short at our input: LOST_AT of the next
        #                                     frame unless a board upstream reports first
        self.pos = 0                        # position learnt from the frame being handled
        self.good_pos = 0                   # position from the last frame whose section A was good
        self.event = _EV_NONE
        self.a_result = NONE
        self.b_result = NONE
        self.frames = 0
        self.bad_frames = 0
        self.state = _HUNT
        self._reset_frame()

    def _reset_frame(self):
        self.i = -1
        self.w = 1
        self.length = frame_len(1)
        self._crc_b = MAX_FRAME             # offset of CRC_B (known from W on)
        self._bsame = True                  # section B sent as received so far: CRC out = CRC in
        self._slot = -1
        self._det_at = MAX_FRAME            # offset of our detail slot (none: past any frame)
        self._bad = False
        self._cut = False                   # the line went idle inside this frame (padded here)
        self._brk_mine = False              # we wrote BRK (our section-A input failed)
        self._dec = _KEEP
        self._carry = 0
        self._rec = 0
        self._cin = _crc.INIT
        self._cout = _crc.INIT

    def set_own(self, cell_mv, temp_dc, status):
        """This board's values for the frames to come (call once per cycle)."""
        volt_ok = not (status & CellStatus.VOLT_SENSOR_FAULT)
        temp_ok = not (status & CellStatus.TEMP_SENSOR_FAULT)
        mv = cell_mv if 0 <= cell_mv <= 0xFFFF else (0 if cell_mv < 0 else 0xFFFF)
        t = temp_enc(temp_dc)
        own = self._own
        own[0] = mv if volt_ok else -1
        own[1] = mv if volt_ok else -1
        own[2] = t if temp_ok else -1
        own[3] = t if temp_ok else -1
        self._own_mv = mv if volt_ok else 0     # a faulty reading is not summed either
        self._own_vf = not volt_ok              # ... and it names this board in FAULT_AT
        d = self._det
        d[0] = mv >> 8
        d[1] = mv & 0xFF
        d[2] = t >> 8
        d[3] = t & 0xFF
        d[4] = status & 0xFF
        flags = 0
        if status & CellStatus.BALANCING:
            flags |= F_BALANCING
        if status & _ERR_BITS:
            flags |= F_ERROR
        if status & CellStatus.UPSTREAM_LOST:
            flags |= F_LOST
        self._own_flags = flags

    def in_frame(self):
        return self.state == _FRAME

    def gap(self):
        """The line went idle. Returns True when a frame was cut short: the caller must then
        finish it locally with ``byte(codec.FRAMING)`` until ``in_frame()`` is False, and send
        none of that padding (the sections still open end as CUT). Every board downstream
        sees the same silence and cuts the frame at the same byte itself, so nobody can tell
        from the cut frame where it was cut: each marks ``report_cut`` and the first board
        that saw it writes its position into LOST_AT of the next frame (the others see
        LOST_AT already set and drop theirs)."""
        if self.state == _FRAME:
            self._cut = True
            self.report_cut = True
            return True
        self.state = _HUNT
        return False

    def skip(self):
        """Ignore the rest of the current input (until the next gap)."""
        self.state = _SKIP
        self._reset_frame()

    def byte(self, b):
        """Process one received character; returns the byte to send or -1."""
        self.event = _EV_NONE
        if self.state == _FRAME:
            i = self.i + 1
            self.i = i
            if O_BRK < i < self._crc_b and b >= 0:
                # a section-B detail byte (most of a long frame): the fast path. Until this
                # board changes a byte of section B the outgoing CRC equals the incoming one,
                # so only one CRC is kept up to then
                k = i - self._det_at        # our detail slot: no division per byte
                o = self._det[k] if 0 <= k < SLOT_LEN else b
                c = self._cin
                self._cin = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ b) & 0xFF]
                if o != b or not self._bsame:
                    if self._bsame:
                        self._bsame = False
                        self._cout = c
                    c = self._cout
                    self._cout = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ o) & 0xFF]
                self.out[i] = o
                return o
            return self._byte(i, b)
        if self.state == _HUNT and b == SYNC:
            self.state = _FRAME
            self._reset_frame()
            self.i = 0
            self.a_result = NONE
            self.b_result = NONE
            self._cin = _crc.crc16_update(_crc.INIT, SYNC)
            self._cout = self._cin
            self.out[0] = SYNC
            self.event = EV_START
            return SYNC
        self.state = _SKIP
        return -1

    def _byte(self, i, b):
        """byte() for everything but the section-B detail bytes (i: its offset)."""
        if b < 0:
            self._bad = True
            b = 0
        o = b
        if i < O_CRC_A:
            if i <= _O_WIN:
                if i == O_W:
                    if b < 1 or b > _MAX_W:
                        self._bad = True
                        b = 1
                        o = 1
                    self.w = b
                    self.length = frame_len(b)
                    self._crc_b = self.length - 2
                elif i == O_COUNT:
                    p = b + 1 if b < 255 else 255
                    self.pos = p
                    o = p
                elif i == O_LOST:
                    if b == 0:
                        if self.report_lost or self.report_cut:
                            o = self.good_pos if self.good_pos else self.pos
                            self.report_lost = False
                            self.report_cut = False
                    else:
                        # reported upstream of us: our cut is the same one seen further on
                        # (or, if the byte is corrupt, this board's check fails and BRK tells)
                        self.report_cut = False
                elif i == _O_WIN:
                    s = self.pos - b
                    if 0 <= s < self.w:
                        self._slot = s
                        self._det_at = O_DETAIL + SLOT_LEN * s
            elif i == O_FAULT:
                # our position is known (COUNT has passed) and this byte has not gone on yet:
                # the first board whose own voltage is not data names itself
                if b == 0 and self._own_vf:
                    o = self.pos
            elif i >= O_MIN_MV:
                if i < O_PACK:
                    k = (i - O_MIN_MV) // 3
                    r = i - O_MIN_MV - 3 * k
                    ov = self._own[k]
                    is_min = k == 0 or k == 2
                    if r == 0:
                        if ov < 0:
                            self._dec = _KEEP
                        else:
                            oh = ov >> 8
                            if oh == b:
                                self._dec = _UNDECIDED
                            elif (oh < b) == is_min:
                                self._dec = _TAKE
                                o = oh
                            else:
                                self._dec = _KEEP
                    elif r == 1:
                        if self._dec == _UNDECIDED:
                            ol = ov & 0xFF
                            if ol != b and (ol < b) == is_min:
                                self._dec = _TAKE
                            else:
                                self._dec = _KEEP
                        if self._dec == _TAKE:
                            o = ov & 0xFF
                    elif self._dec == _TAKE:
                        o = self.pos
                elif i < O_FLAGS:
                    s = b + ((self._own_mv >> (8 * (i - O_PACK))) & 0xFF) + self._carry
                    o = s & 0xFF
                    self._carry = s >> 8
                else:
                    o = b | self._own_flags
            c = self._cin
            self._cin = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ b) & 0xFF]
            c = self._cout
            self._cout = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ o) & 0xFF]
        elif i < A_LEN:
            if i == O_CRC_A:
                self._rec = b
                o = self._cout >> 8
            else:
                res = self._check((self._rec << 8) | b)
                self.a_result = res
                if res == OK:
                    self.good_pos = self.pos
                    o = self._cout & 0xFF
                else:
                    o = (self._cout ^ _POISON) & 0xFF
                self._bad = False
                self._cin = _crc.INIT
                self._cout = _crc.INIT
                self._bsame = True
                self.event = EV_A
        else:
            n = self.length
            if i < n - 2:
                if i == O_BRK:
                    if self.a_result == BAD:
                        # our own input failed in section A. A non-zero BRK here is either a
                        # board upstream reporting (then a second wire failed in the same
                        # frame: we report the nearer one) or, far likelier, the same garbage
                        # that broke our section A: we cannot tell before it has gone on, so
                        # our position replaces it and we vouch for section B
                        o = self.good_pos if self.good_pos else self.pos
                        self._brk_mine = True
                else:
                    k = i - self._det_at    # our detail slot: no division per byte
                    if 0 <= k < SLOT_LEN:
                        o = self._det[k]
                c = self._cin
                self._cin = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ b) & 0xFF]
                if o != b or not self._bsame:   # (as in the fast path in byte())
                    if self._bsame:
                        self._bsame = False
                        self._cout = c
                    c = self._cout
                    self._cout = ((c << 8) & 0xFFFF) ^ _TABLE[((c >> 8) ^ o) & 0xFF]
            elif i == n - 2:
                self._rec = b
                if self._bsame:
                    self._bsame = False
                    self._cout = self._cin
                o = self._cout >> 8
            else:
                res = self._check((self._rec << 8) | b)
                self.b_result = res
                if res == OK:
                    o = self._cout & 0xFF
                    self.frames += 1
                elif self._brk_mine:
                    # our section-A input failed: BRK (written by us) is all that counts in this
                    # section B now (nobody takes detail from a frame whose A is not good), so we
                    # vouch for what we send and the report reaches End even when our input B
                    # is damaged too (garbage through both sections)
                    o = self._cout & 0xFF
                    self.bad_frames += 1
                else:
                    o = (self._cout ^ _POISON) & 0xFF
                    self.bad_frames += 1
                    if res == BAD:
                        self.report_lost = True
                self.state = _HUNT
                self.event = EV_B
        self.out[i] = o
        return o

    def originate(self, buf, n, with_crc=True):
        """Add this board to a frame nobody has contributed to yet (``build_empty``) in place,
        as feeding its n bytes through ``byte`` would, and return n; the CRCs are computed once
        over the buffer instead of byte by byte (an originated frame is the whole frame in one
        go, the cut-through path is for frames flowing past). ``with_crc=False``: the caller
        fills CRC_A and CRC_B (``crc16`` over the same ranges) before those bytes go out.
        No allocation."""
        self.state = _HUNT
        self._reset_frame()
        w = buf[O_W]
        if w < 1 or w > _MAX_W:
            w = 1
            buf[O_W] = 1
        self.w = w
        c = buf[O_COUNT]
        p = c + 1 if c < 255 else 255
        self.pos = p
        buf[O_COUNT] = p
        if buf[O_LOST] == 0:
            if self.report_lost or self.report_cut:
                buf[O_LOST] = self.good_pos if self.good_pos else p
                self.report_lost = False
                self.report_cut = False
        else:
            self.report_cut = False
        s = p - buf[_O_WIN]
        self._slot = s if 0 <= s < w else -1
        if buf[O_FAULT] == 0 and self._own_vf:
            buf[O_FAULT] = p
        own = self._own
        o = O_MIN_MV
        k = 0
        while k < 4:
            ov = own[k]
            if ov >= 0:
                cur = (buf[o] << 8) | buf[o + 1]
                is_min = k == 0 or k == 2
                if (ov < cur) if is_min else (ov > cur):
                    buf[o] = ov >> 8
                    buf[o + 1] = ov & 0xFF
                    buf[o + 2] = p
            o += 3
            k += 1
        carry = 0
        mv = self._own_mv
        i = 0
        while i < 3:
            t = buf[O_PACK + i] + ((mv >> (8 * i)) & 0xFF) + carry
            buf[O_PACK + i] = t & 0xFF
            carry = t >> 8
            i += 1
        buf[O_FLAGS] |= self._own_flags
        if with_crc:
            cr = _crc.crc16(buf, 0, O_CRC_A)
            buf[O_CRC_A] = cr >> 8
            buf[O_CRC_A + 1] = cr & 0xFF
        self.good_pos = p
        self.a_result = OK
        if self._slot >= 0:
            d = self._det
            o = O_DETAIL + SLOT_LEN * self._slot
            i = 0
            while i < SLOT_LEN:
                buf[o + i] = d[i]
                i += 1
        n = frame_len(w)
        if with_crc:
            cr = _crc.crc16(buf, O_BRK, n - 2)
            buf[n - 2] = cr >> 8
            buf[n - 1] = cr & 0xFF
        self.b_result = OK
        self.frames += 1
        self.event = EV_B
        return n

    def _check(self, received):
        if self._cut:
            return CUT
        if self._bad:
            return BAD
        syn = received ^ self._cin
        if syn == 0:
            return OK
        if syn == _POISON:
            return POISONED
        return BAD


def apply_a(buf, snap):
    """Copy section A of a frame whose CRC_A checked OK into a PackSnapshot (aggregates,
    Begin's switches and currents, FAULT_AT as ``volt_fault_at``, a non-zero LOST_AT as the
    break position: a report holds until a complete frame clears it, see apply_b). No
    allocation."""
    snap.seq = buf[O_SEQ]
    sw = buf[O_SWITCH]
    snap.cells_min, snap.cells_max = _options.CELL_RANGES[_options.cell_range_code(sw)]
    snap.switch_vbal_mv = _options.balance_mv(sw)
    snap.cell_count = buf[O_COUNT]
    snap.min_mv = u16(buf, O_MIN_MV)
    snap.min_mv_cell = buf[O_MIN_MV + 2]
    snap.max_mv = u16(buf, _O_MAX_MV)
    snap.max_mv_cell = buf[_O_MAX_MV + 2]
    p = buf[O_MIN_T + 2]
    snap.min_temp_cell = p
    snap.min_temp_dc = u16(buf, O_MIN_T) - _TEMP_OFFSET if p else 0
    p = buf[O_MAX_T + 2]
    snap.max_temp_cell = p
    snap.max_temp_dc = u16(buf, O_MAX_T) - _TEMP_OFFSET if p else 0
    snap.pack_mv = buf[O_PACK] | (buf[O_PACK + 1] << 8) | (buf[O_PACK + 2] << 16)
    f = buf[O_FLAGS]
    snap.any_balancing = bool(f & F_BALANCING)
    snap.any_error = bool(f & (F_ERROR | F_LOST))
    if buf[O_LOST]:
        snap.break_position = buf[O_LOST]
    snap.s1_ma = s32(buf, _O_S1)
    f = buf[_O_SENS]
    snap.s1_flags = f & 0x0F
    snap.s2_ma = s32(buf, _O_S2)
    snap.s2_flags = f >> 4
    snap.volt_fault_at = buf[O_FAULT]


def apply_b(buf, w, count, snap):
    """Copy the detail window of a frame whose CRC_A and CRC_B both checked OK into the snapshot
    for the positions 1..count it covers (their age restarts at 0). Returns BRK (0 = none).
    A complete frame (no BRK, no LOST_AT, nobody originated it) clears break_position; BRK
    itself is the caller's to store (it also counts when section A failed)."""
    brk = buf[O_BRK]
    if brk == 0 and buf[O_LOST] == 0 and not buf[O_FLAGS] & F_LOST:
        snap.break_position = 0
    win = buf[_O_WIN]
    j = 0
    o = O_DETAIL
    while j < w:
        p = win + j
        if 1 <= p <= count:
            k = p - 1
            snap.cell_mv[k] = u16(buf, o)
            snap.cell_temp_dc[k] = u16(buf, o + 2) - _TEMP_OFFSET
            snap.cell_status[k] = buf[o + 4]
            snap.cell_age[k] = 0
        j += 1
        o += SLOT_LEN
    return brk

