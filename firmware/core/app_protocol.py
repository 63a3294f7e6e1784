"""The app link: the 123\\SmartBMS gen3 text-line protocol plus cellchain's extensions.

Hardware-free: transports (hal/ble.py, usb_app.py, the virtual pack's socket) open a session
with a writer ``write(buf, n)`` that must copy ``buf[:n]`` at once (buffers are reused), then
pass received bytes to ``feed(data, n, slot)``. The End role calls ``stream_round()`` once per
cycle and ``tick(dt_ms)`` with the elapsed time. A transport with a small TX buffer (BLE) opens
its sessions with ``pull=True`` and takes the round line by line with ``pull_lines(slot, room)``
when it has room. Wire format: docs/ble-protocol.md (gen3 lines byte-compatible with gen3: C
lines with 6 fields and problem bits only, 'X' no-value fields during comm loss; cellchain's
per-cell status and age on its own CS lines).

The controller ``ctl`` (End role) provides ``snap`` (core.snapshot.PackSnapshot), ``brain``
(pack brain state), ``settings`` (core.settings.Settings), ``firmware_version`` (tuple) and
the methods ``apply_setting(name, value)``, ``set_password_hash(salt, hash)``,
``select_preset(chemistry)``, ``set_mode(mode)``, ``zero_current()``; each returns None on
success or a refusal message, and validates and saves atomically.

Per-byte work (``feed`` collecting a line, ``$`` keep-alives) and ``stream_round`` allocate
nothing; a complete command line may allocate (commands are rare and bounded).
"""
from micropython import const

from core import alarms, password
from core import events as events_mod
from core import settings as settings_mod
from core.snapshot import CellStatus, SensorFlags

LINE_MAX = const(64)          # longest accepted command line, CR excluded
_TOKEN_MAX = const(16)        # ID:<token>? fences
_MAX_SESSIONS = const(4)       # BLE centrals + USB + socket clients at once
_GEN3_MAX_CELLS = const(99)    # C lines carry two decimal digits for cell and count
_CS_CELLS = const(16)          # cells per CS line (cellchain's per-cell status and age)
_SUMMARY_LINES = const(7)      # U V T E M H B
# The C line's status carries only problem bits, as gen3 readers expect (0 = healthy cell):
GEN3_PROBLEM = CellStatus.TEMP_SENSOR_FAULT | CellStatus.VOLT_SENSOR_FAULT | CellStatus.STALE
_NO_DATA = CellStatus.STALE   # the cell's values are not known (comm loss, stale detail)
# Every problem also sets 0x80 (issue 22): aiobmsble's problem mask 0x0EFC has no bit 0x02,
# so an NTC fault alone read as a healthy cell. 0x80 = "a value on this line is not live data".
_PROBLEM_ANY = const(0x80)

_CR = const(13)
_LF = const(10)
_DOLLAR = const(36)
_US = const(95)               # "_"
_X = const(88)                # "X"
_PLUS = const(43)
_MINUS = const(45)
_COLON = const(58)

_HEX = b"0123456789ABCDEF"
_OK = b"OK\r"
_NA = b"NA\r"
# A refusal with a reason is the reason line ``ERR:<reason>`` then a bare ``NA`` (the gen3 reply,
# byte for byte; gen3 readers skip ``<tag>:`` lines).
_NA_LOGIN = b"ERR:login required\rNA\r"
_NA_LONG = b"ERR:line too long\rNA\r"
_NA_CHAR = b"ERR:bad character\rNA\r"
_NA_UNKNOWN = b"ERR:unknown command\rNA\r"
_H_ZEROS = b"_0000_0000_00_000000_000000\r"
_B_ZEROS = b"_0000_0000_0000\r"

_CHEMISTRIES = ("lifepo4", "lto", "nmc", "nca")


def _put_hex(buf, pos, value, width):
    """Upper-case hex, zero-padded to ``width``, wider if the value needs it. value >= 0."""
    if value < 0:
        value = 0
    n = 1
    v = value >> 4
    while v:
        n += 1
        v >>= 4
    if n < width:
        n = width
    i = pos + n - 1
    while i >= pos:
        buf[i] = _HEX[value & 15]
        value >>= 4
        i -= 1
    return pos + n


def _put_dec(buf, pos, value, width):
    """Decimal, zero-padded to ``width``, wider if needed. value >= 0."""
    if value < 0:
        value = 0
    n = 1
    v = value // 10
    while v:
        n += 1
        v //= 10
    if n < width:
        n = width
    i = pos + n - 1
    while i >= pos:
        buf[i] = 48 + value % 10
        value //= 10
        i -= 1
    return pos + n


def _put_signed_hex(buf, pos, value, width):
    if value < 0:
        buf[pos] = _MINUS
        value = -value
    else:
        buf[pos] = _PLUS
    return _put_hex(buf, pos + 1, value, width)


def _put_x(buf, pos, count):
    for i in range(count):
        buf[pos + i] = _X
    return pos + count


def _put_bytes(buf, pos, data):
    for i in range(len(data)):
        buf[pos + i] = data[i]
    return pos + len(data)


def mv_5(mv):
    """mV to the channel's 5 mV steps, rounded."""
    if mv <= 0:
        return 0
    return (mv + 2) // 5


def ma_50(ma):
    """mA to the channel's 50 mA (0.05 A) steps, rounded half away from zero."""
    if ma < 0:
        return -((25 - ma) // 50)
    return (ma + 25) // 50


def temp_raw(dc):
    """0.1 degC to the channel's raw temperature: degC + 276 (aiobmsble), rounded."""
    raw = (dc + 2765) // 10
    return raw if raw > 0 else 0


def version_line(version, cell_count):
    """The reply to V@ (without CR): ``<ma><mi><build>_<ma>_<mi>_<build>_<cells>_<sum>``,
    numbers in hex, sum = all preceding bytes except '_' mod 256."""
    major, minor, build = version[0], version[1], version[2]
    text = "%X%X%X_%02X_%02X_%02X_%03X_" % (major & 15, minor & 15, build, major & 255,
                                           minor & 255, build & 255, cell_count)
    return text + "%02X" % checksum(text)


def checksum(text):
    """Sum of the bytes of ``text`` except '_', mod 256 (the V@ line's check)."""
    total = 0
    for ch in text:
        if ch != "_":
            total += ord(ch)
    return total & 255


class Session:
    """One connected central (or USB / socket client): its line buffer and login state."""

    def __init__(self, slot):
        self.slot = slot
        self.buf = bytearray(LINE_MAX)
        self.write = None
        self.pull = False          # the transport pulls data lines (pull_lines) when it has room
        self.clear()

    def clear(self):
        self.n = 0
        self.overflow = False
        self.bad = False
        self.logged_in = False
        self.streaming = False
        self.next_line = -1        # pulling transports: next line of the round, -1 = none
        self.round_cells = 0       # cells of the round in progress
        self.round_pending = False  # a new round was asked for while one was going out


class AppProtocol:
    """Bytes in, bytes out: one handler shared by every transport of the End board."""

    def __init__(self, ctl, max_sessions=_MAX_SESSIONS, lockout_path=None):
        self.ctl = ctl
        self.sessions = [Session(i) for i in range(max_sessions)]
        self.lockout = password.Lockout(max_sessions, lockout_path)
        self._line = bytearray(96)  # one data line; the longest (C, H) is < 40 bytes

    # ---- sessions -------------------------------------------------------------------------
    def open(self, write, pull=False):
        """Start a session for a new connection; returns its slot, or -1 when all are taken.
        ``pull`` True: the transport takes the data round line by line with ``pull_lines``
        when it has room (BLE: a round can be larger than its TX buffer), instead of having
        the whole round written at once by ``stream_round``."""
        for i in range(len(self.sessions)):
            s = self.sessions[i]
            if s.write is None:
                s.clear()
                s.write = write
                s.pull = pull
                return i
        return -1

    def close(self, slot):
        """The connection is gone: forget its login and buffer."""
        if 0 <= slot < len(self.sessions):
            s = self.sessions[slot]
            s.clear()
            s.write = None
            self.lockout.close(slot)
            s.pull = False

    def logged_in(self, slot):
        return self.sessions[slot].logged_in

    def streaming(self, slot):
        return self.sessions[slot].streaming

    def drop_all_sessions(self):
        """Log every connection out and stop its stream (connections stay open)."""
        for s in self.sessions:
            s.clear()

    def reset_password(self):
        """5 s button: factory password 1234 (empty hash), no lockout, every session dropped."""
        st = self.ctl.settings
        self.ctl.set_password_hash(st.pw_salt, "")
        self.lockout.reset()
        self.drop_all_sessions()

    def tick(self, dt_ms):
        self.lockout.tick(dt_ms)

    # ---- bytes in ---------------------------------------------------------------------------
    def feed(self, data, n=-1, slot=0):
        """Bytes received on one connection. ``$`` (keep-alive) and LF are ignored anywhere,
        CR ends a line. A line longer than LINE_MAX is dropped whole (one error reply)."""
        if not 0 <= slot < len(self.sessions):
            return
        s = self.sessions[slot]
        if s.write is None:
            return
        if n < 0:
            n = len(data)
        buf = s.buf
        for i in range(n):
            b = data[i]
            if b == _CR:
                self._end_line(s)
            elif b == _DOLLAR or b == _LF:
                continue
            elif s.overflow:
                continue
            elif s.n >= LINE_MAX:
                s.overflow = True
            else:
                if b < 32 or b > 126:
                    s.bad = True
                buf[s.n] = b
                s.n += 1

    def _end_line(self, s):
        n = s.n
        overflow = s.overflow
        bad = s.bad
        s.n = 0
        s.overflow = False
        s.bad = False
        if overflow:
            self._send(s, _NA_LONG)
        elif bad:
            self._send(s, _NA_CHAR)
        elif n:
            self._command(s, bytes(s.buf[:n]).decode())

    def _send(self, s, data):
        if s.write is not None:
            s.write(data, len(data))

    def _text(self, s, text):
        self._send(s, (text + "\r").encode())

    def _refuse(self, s, msg):
        """``ERR:<reason>`` then ``NA``: gen3 readers see the plain NA they know."""
        self._text(s, "ERR:" + msg.replace("\r", " ").replace("\n", " "))
        self._send(s, _NA)

    def _result(self, s, msg):
        if msg is None:
            self._send(s, _OK)
        else:
            self._refuse(s, str(msg))

    # ---- commands ---------------------------------------------------------------------------
    def _command(self, s, line):
        if line.startswith("PW") and line.endswith("!"):
            self._login(s, line[2:-1], True)
        elif line.startswith("PV") and line.endswith("!"):
            self._login(s, line[2:-1], False)
        elif line.startswith("ID:") and line.endswith("?"):
            self._fence(s, line[3:-1])
        elif line == "E!":
            if s.logged_in:
                s.streaming = True
                self._send(s, _OK)
            else:
                self._send(s, _NA)
        elif line == "D!":
            s.streaming = False
            self._send(s, _OK)
        elif line == "V@":
            self._text(s, version_line(self.ctl.firmware_version, self.ctl.snap.cell_count))
        elif line == "LK?":
            self._lock_status(s)
        elif line == "F?":
            v = self.ctl.firmware_version
            self._text(s, "F:%d.%d.%d" % (v[0], v[1], v[2]))
            self._send(s, _OK)
        elif not s.logged_in:
            if self._known(line):
                self._send(s, _NA_LOGIN)
            else:
                self._send(s, _NA_UNKNOWN)
        elif line == "S?":
            self._read_settings(s)
        elif line.startswith("S:") and line.endswith("!"):
            self._write_setting(s, line[2:-1])
        elif line.startswith("PC:") and line.endswith("!"):
            self._change_password(s, line[3:-1])
        elif line.startswith("CH:") and line.endswith("!"):
            self._preset(s, line[3:-1])
        elif line.startswith("MO:") and line.endswith("!"):
            self._mode(s, line[3:-1])
        elif line == "ZC!":
            self._result(s, self.ctl.zero_current())
        elif line == "A?":
            self._alarms(s)
        elif line == "ST?":
            self._status(s)
        elif line == "CL?":
            self._cells(s)
        elif line == "EV?":
            self._events(s)
        else:
            self._send(s, _NA_UNKNOWN)

    @staticmethod
    def _known(line):
        if line in ("S?", "ZC!", "A?", "ST?", "CL?", "EV?"):
            return True
        if not line.endswith("!"):
            return False
        for p in ("S:", "PC:", "CH:", "MO:"):
            if line.startswith(p):
                return True
        return False

    def _lock_status(self, s):
        lk = self.lockout
        self._text(s, "LK:%d %d %d" % (lk.remaining[s.slot], lk.global_remaining_ms, lk.global_failures))
        self._send(s, _OK)

    def _fence(self, s, token):
        """``ID:<token>?`` -> ``ID:<token>``: the host client brackets every request with two
        of these, so a reply can never be taken for another request's (docs/ble-protocol.md)."""
        ok = 1 <= len(token) <= _TOKEN_MAX
        for ch in token:
            if not ("0" <= ch <= "9" or "a" <= ch <= "z" or "A" <= ch <= "Z"):
                ok = False
        if ok:
            self._text(s, "ID:" + token)
        else:
            self._refuse(s, "use ID:<1..%d letters or digits>?" % _TOKEN_MAX)

    def _login(self, s, pw, session):
        """``PW`` (``session`` True): log this session in or, on a wrong password, out.
        ``PV``: only check the password (same lockout), the session stays as it is."""
        lk = self.lockout
        if lk.locked(s.slot):
            self._send(s, _NA)
            return
        lk.attempt(s.slot)
        st = self.ctl.settings
        if password.check(st.pw_salt, st.pw_hash, pw):
            lk.success(s.slot)
            if session:
                s.logged_in = True
            self._send(s, _OK)
        else:
            lk.fail(s.slot)
            if session:
                s.logged_in = False
                s.streaming = False
            self._send(s, _NA)

    def owner_window(self):
        """Short press of the End board's button: the owner's next logins pass the global lock."""
        self.lockout.owner_window()

    def _change_password(self, s, body):
        parts = body.split(":")
        if len(parts) != 2:
            self._refuse(s, "use PC:<old>:<new>!")
            return
        if self.lockout.locked(s.slot):
            self._refuse(s, "locked for %d s" % ((self.lockout.remaining_ms(s.slot) + 999) // 1000))
            return
        self.lockout.attempt(s.slot)
        st = self.ctl.settings
        if not password.check(st.pw_salt, st.pw_hash, parts[0]):
            self.lockout.fail(s.slot)
            self._refuse(s, "wrong password")
            return
        self.lockout.success(s.slot)
        new = parts[1]
        if not password.valid_new(new):
            self._refuse(s, "password must be %d..%d digits" % (password.NEW_MIN_DIGITS, password.MAX_DIGITS))
            return
        salt = st.pw_salt or password.new_salt()
        msg = self.ctl.set_password_hash(salt, password.make_hash(salt, new))
        if msg is None:
            for other in self.sessions:  # everyone else logs in again with the new password
                if other is not s:
                    other.logged_in = False
                    other.streaming = False
        self._result(s, msg)

    def _read_settings(self, s):
        st = self.ctl.settings
        for name in settings_mod.FIELD_NAMES:
            self._text(s, "S:%s=%d" % (name, getattr(st, name)))
        self._text(s, "S:name=" + st.name)
        self._send(s, _OK)

    def _write_setting(self, s, body):
        eq = body.find("=")
        if eq <= 0:
            self._refuse(s, "use S:<name>=<value>!")
            return
        name = body[:eq]
        text = body[eq + 1:]
        if name == "name":
            if not 1 <= len(text) <= 20:
                self._refuse(s, "name: must be 1..20 characters")
                return
            value = text
        elif name in settings_mod.FIELD_NAMES:
            value = _parse_int(text)
            if value is None:
                lo, hi, unit = settings_mod.field_range(name)
                self._refuse(s, "%s=%s: must be an integer %d..%d %s" % (name, text, lo, hi, unit))
                return
        else:
            self._refuse(s, "unknown setting " + name)
            return
        self._result(s, self.ctl.apply_setting(name, value))

    def _preset(self, s, arg):
        code = _parse_int(arg)
        if code is None and arg.lower() in _CHEMISTRIES:
            code = _CHEMISTRIES.index(arg.lower()) + 1
        if code is None or not 1 <= code <= 4:
            self._refuse(s, "chemistry must be lifepo4, lto, nmc or nca (1..4)")
            return
        self._result(s, self.ctl.select_preset(code))

    def _mode(self, s, arg):
        a = arg.lower()
        if a in ("normal", "0"):
            mode = settings_mod.NORMAL
        elif a in ("critical", "1"):
            mode = settings_mod.CRITICAL
        else:
            self._refuse(s, "mode must be normal or critical")
            return
        self._result(s, self.ctl.set_mode(mode))

    def _alarms(self, s):
        b = self.ctl.brain
        mask = b.alarms
        names = alarms.names(mask)
        self._text(s, "A:%04X %d %s" % (mask, b.break_position, ",".join(names) if names else "-"))
        self._send(s, _OK)

    def _status(self, s):
        b = self.ctl.brain
        snap = self.ctl.snap
        self._text(s, (
            "ST:cells=%d pack_mv=%d current_ma=%d soc_c=%d soc_cal=%d charge=%d load=%d "
            "comm=%d alarms=%04X break=%d soh=%d cycles=%d in_wh=%d out_wh=%d stored_wh=%d "
            "pin_w=%d pout_w=%d min_mv=%d max_mv=%d uptime_s=%d pw_factory=%d link=%d rst=%d") % (
            snap.cell_count, self._pack_mv_trusted(snap), b.current_ma, b.soc_c, 1 if b.soc_calibrated else 0,
            1 if b.charge_allowed else 0, 1 if b.load_allowed else 0, 1 if snap.comm_ok else 0,
            b.alarms, b.break_position, b.soh_pct, b.charge_cycles, b.energy_in_wh,
            b.energy_out_wh, b.stored_wh, b.power_in_w, b.power_out_w,
            snap.min_mv if self._cells_ok() else -1, snap.max_mv if self._cells_ok() else -1,
            b.uptime_s, 0 if self.ctl.settings.pw_hash else 1,
            getattr(snap, "link_good", 64), getattr(b, "reset_position", 0)))
        self._send(s, _OK)

    def _pack_mv_trusted(self, snap):
        """ST?'s pack_mv: the sum of the cells when every cell is heard and trusted, else -1
        ("unknown", issue 22: never section A's running sum of the cells still heard)."""
        if not self._cells_ok() or not snap.trusted():
            return -1
        total = 0
        for i in range(snap.cell_count):
            total += snap.cell_mv[i]
        return total

    def _cells(self, s):
        snap = self.ctl.snap
        ok = self._cells_ok()
        n = snap.cell_count if ok else snap.held_count
        for i in range(n):
            st = snap.cell_status[i] if ok and i < snap.cell_count else _NO_DATA
            temp = "X" if st & CellStatus.TEMP_SENSOR_FAULT else "%d" % snap.cell_temp_dc[i]
            mv = "X" if st & (CellStatus.VOLT_SENSOR_FAULT | _NO_DATA) else "%d" % snap.cell_mv[i]
            if st & _NO_DATA:
                temp = "X"
            self._text(s, "CL:%d %s %s %02X" % (i + 1, mv, temp, st))
        self._send(s, _OK)

    def _events(self, s):
        log = getattr(self.ctl, "events", None)
        if log is None:
            self._send(s, _NA_UNKNOWN)
            return
        first = log.total - log.count + 1
        for n in range(log.count):
            i = log.index(n)
            kind = log.kind[i]
            self._text(s, "EV:%d %d %s %s %d %d %d %d %d" % (
                first + n, log.t_s[i], events_mod.KIND_NAMES[kind], events_mod.code_name(kind, log.code[i]),
                log.min_mv[i], log.max_mv[i], log.current_ma[i], log.soc_c[i], log.break_pos[i]))
        self._send(s, _OK)

    # ---- streaming ---------------------------------------------------------------------------
    def stream_round(self):
        """One round to every streaming, logged-in session: C lines (cells 1..99), then U, V,
        T, E, M, H, B, then cellchain's CS lines. Sessions that write at once get the whole
        round now; pulling sessions (BLE) start it, or, while the previous one is still going
        out, get the next round right after it (a round is never cut). Allocation-free."""
        push = False
        for s in self.sessions:
            if s.streaming and s.logged_in and s.write is not None and not s.pull:
                push = True
        cells = self._round_cells()
        total = self._round_length(cells) if push else 0
        for k in range(total):
            n = 0
            for s in self.sessions:
                if s.streaming and s.logged_in and s.write is not None and not s.pull:
                    if n == 0:
                        n = self._round_line(k, cells)
                    s.write(self._line, n)
        for s in self.sessions:
            if s.streaming and s.logged_in and s.write is not None and s.pull:
                if s.next_line < 0:
                    s.next_line = 0
                    s.round_cells = cells
                else:
                    s.round_pending = True

    def pull_lines(self, slot, room):
        """A pulling transport has ``room`` bytes free: write the next whole lines of the round
        in progress that fit. Returns the bytes written. Allocation-free."""
        if not 0 <= slot < len(self.sessions):
            return 0
        s = self.sessions[slot]
        if s.write is None or not (s.streaming and s.logged_in):
            s.next_line = -1
            s.round_pending = False
            return 0
        sent = 0
        while s.next_line >= 0:
            if s.next_line >= self._round_length(s.round_cells):
                if s.round_pending:
                    s.round_pending = False
                    s.next_line = 0
                    s.round_cells = self._round_cells()
                else:
                    s.next_line = -1
                continue
            n = self._round_line(s.next_line, s.round_cells)
            if n > room - sent:
                break                  # built again, with fresh values, when there is room
            s.write(self._line, n)
            sent += n
            s.next_line += 1
        return sent

    def _round_cells(self):
        """Cells in a round: the live chain's, or during comm loss the last complete chain's
        (issue 22: the count never changes while it is the same chain; readers rebuild their
        cell table on a new count)."""
        snap = self.ctl.snap
        n = snap.cell_count if self._cells_ok() else snap.held_count
        return n if n < len(snap.cell_mv) else len(snap.cell_mv)

    @staticmethod
    def _round_length(cells):
        c = cells if cells < _GEN3_MAX_CELLS else _GEN3_MAX_CELLS
        return c + _SUMMARY_LINES + (cells + _CS_CELLS - 1) // _CS_CELLS

    def _cells_ok(self):
        """True when the cell values are data: a fresh, complete chain (else every cell and
        the pack voltage go out as the gen3 'X' no-value fields)."""
        snap = self.ctl.snap
        return (snap.valid and snap.comm_ok and snap.cell_count > 0
                and not self.ctl.brain.alarms & alarms.COMM_LOST)

    def _round_line(self, k, cells):
        """Fill self._line with line k of a round of ``cells`` cells; returns its length."""
        c = cells if cells < _GEN3_MAX_CELLS else _GEN3_MAX_CELLS
        if k < c:
            return self._c_line(self.ctl.snap, k, c)
        k -= c
        if k == 0:
            return self._u_line()
        if k == 1:
            return self._v_line()
        if k == 2:
            return self._t_line()
        if k == 3:
            return self._e_line()
        if k == 4:
            return self._m_line()
        if k == 5:
            return self._h_line()
        if k == 6:
            return self._b_line()
        return self._cs_line(self.ctl.snap, (k - _SUMMARY_LINES) * _CS_CELLS, cells)

    def _start(self, tag):
        buf = self._line
        buf[0] = tag
        buf[1] = _US
        return 2

    def _end(self, pos):
        self._line[pos] = _CR
        return pos + 1

    def _c_line(self, snap, i, count):
        """Gen3 ``C_nn_NN_vvv_ttt_ss``: 6 fields, status = problem bits only (GEN3_PROBLEM,
        plus 0x80 on any problem). Both gen3 readers read an ``XXX`` field as 0 (0 V, -276 degC),
        so (issue 22): during comm loss the cell's last heard values go out flagged 0x80; an
        open NTC sends the cell's last valid temperature (else the chain's lowest) flagged
        0x82; only a stuck ADC's voltage stays ``XXX`` (0 V, flagged 0x84: it is a fault)."""
        buf = self._line
        p = self._start(67)  # C
        p = _put_dec(buf, p, i + 1, 2)
        buf[p] = _US
        p = _put_dec(buf, p + 1, count, 2)
        buf[p] = _US
        st = snap.cell_status[i] & GEN3_PROBLEM
        if not self._cells_ok():
            st = _NO_DATA
            p = _put_hex(buf, p + 1, mv_5(snap.held_mv[i]), 3)
        elif st & (CellStatus.VOLT_SENSOR_FAULT | _NO_DATA):
            p = _put_x(buf, p + 1, 3)
        else:
            p = _put_hex(buf, p + 1, mv_5(snap.cell_mv[i]), 3)
        buf[p] = _US
        if st & (CellStatus.TEMP_SENSOR_FAULT | _NO_DATA):
            t = snap.held_t[i]
            if t:
                p = _put_hex(buf, p + 1, temp_raw(t * 10 - 1000), 3)
            elif snap.min_temp_cell and self._cells_ok():
                p = _put_hex(buf, p + 1, temp_raw(snap.min_temp_dc), 3)
            else:
                p = _put_x(buf, p + 1, 3)
        else:
            p = _put_hex(buf, p + 1, temp_raw(snap.cell_temp_dc[i]), 3)
        buf[p] = _US
        p = _put_hex(buf, p + 1, st | _PROBLEM_ANY if st else 0, 2)
        return self._end(p)

    def _cs_line(self, snap, first, cells):
        """cellchain's ``CS:fff_ssaa...``: cell number of the first cell (3 decimal digits),
        then per cell (up to _CS_CELLS) its full CellStatus bits and its detail age, 2 hex
        digits each. Gen3 readers ignore the line (tag with ':')."""
        buf = self._line
        buf[0] = 67  # C
        buf[1] = 83  # S
        buf[2] = _COLON
        p = _put_dec(buf, 3, first + 1, 3)
        buf[p] = _US
        p += 1
        last = first + _CS_CELLS
        if last > cells:
            last = cells
        for i in range(first, last):
            p = _put_hex(buf, p, snap.cell_status[i], 2)
            p = _put_hex(buf, p, snap.cell_age[i], 2)
        return self._end(p)

    def _current(self, p, ma, flags):
        buf = self._line
        buf[p] = _US
        if flags & SensorFlags.PRESENT and not flags & SensorFlags.FAULT:
            return _put_signed_hex(buf, p + 1, ma_50(ma), 4)
        return _put_x(buf, p + 1, 5)

    def _u_line(self):
        snap = self.ctl.snap
        buf = self._line
        p = self._start(85)  # U
        pack = self._pack_5mv(snap)
        if pack >= 0:
            p = _put_hex(buf, p, pack, 4)
        else:
            p = _put_x(buf, p, 4)
        ok = self._cells_ok()     # currents come over the link: none without it
        p = self._current(p, snap.s1_ma, snap.s1_flags if ok else 0)
        buf[p] = _US
        if ok and (self._sensor_ok(snap.s1_flags) or self._sensor_ok(snap.s2_flags)):
            p = _put_signed_hex(buf, p + 1, ma_50(self.ctl.brain.current_ma), 4)
        else:
            p = _put_x(buf, p + 1, 5)     # never "+0000" for a current nobody measured
        p = self._current(p, snap.s2_ma, snap.s2_flags if ok else 0)
        return self._end(p)

    @staticmethod
    def _sensor_ok(flags):
        return bool(flags & SensorFlags.PRESENT and not flags & SensorFlags.FAULT)

    def _pack_5mv(self, snap):
        """Pack voltage in 5 mV steps as the sum of the cells, each rounded as its C line
        sends it (so the lines add up). When a cell is unheard or its voltage is not data,
        the last pack voltage with every cell trusted (the gen3 readers read ``XXXX`` as a
        0 V pack); -1 (``XXXX``) only when there never was one. Never a partial sum."""
        if self._cells_ok() and not snap.volt_fault_at:
            total = 0
            status = snap.cell_status
            for i in range(self._round_cells()):
                if status[i] & (CellStatus.VOLT_SENSOR_FAULT | _NO_DATA):
                    total = -1
                    break
                total += mv_5(snap.cell_mv[i])
            if total >= 0:
                return total
        return mv_5(snap.held_pack_mv) if snap.held_pack_mv > 0 else -1

    def _v_line(self):
        snap = self.ctl.snap
        buf = self._line
        p = self._start(86)  # V
        if self._cells_ok():
            p = _put_hex(buf, p, mv_5(snap.min_mv), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, snap.min_mv_cell, 2)
            buf[p] = _US
            p = _put_hex(buf, p + 1, mv_5(snap.max_mv), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, snap.max_mv_cell, 2)
        elif snap.held_count:
            # comm loss: lowest/highest of the held cells (the C lines' values), not 0 V
            lo = 0
            hi = 0
            held = snap.held_mv
            for i in range(1, snap.held_count):
                if held[i] < held[lo]:
                    lo = i
                if held[i] > held[hi]:
                    hi = i
            p = _put_hex(buf, p, mv_5(held[lo]), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, lo + 1, 2)
            buf[p] = _US
            p = _put_hex(buf, p + 1, mv_5(held[hi]), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, hi + 1, 2)
        else:
            p = _put_bytes(buf, p, b"XXX_XX_XXX_XX")
        buf[p] = _US
        p = _put_hex(buf, p + 1, mv_5(self.ctl.settings.vbal_mv), 3)
        return self._end(p)

    def _t_line(self):
        snap = self.ctl.snap
        buf = self._line
        p = self._start(84)  # T
        if self._cells_ok() and snap.min_temp_cell and snap.max_temp_cell:
            p = _put_hex(buf, p, temp_raw(snap.min_temp_dc), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, snap.min_temp_cell, 2)
            buf[p] = _US
            p = _put_hex(buf, p + 1, temp_raw(snap.max_temp_dc), 3)
            buf[p] = _US
            p = _put_dec(buf, p + 1, snap.max_temp_cell, 2)
        else:
            p = _put_bytes(buf, p, b"XXX_XX_XXX_XX")
        return self._end(p)

    def _e_line(self):
        b = self.ctl.brain
        buf = self._line
        p = self._start(69)  # E
        p = _put_hex(buf, p, b.energy_in_wh, 6)
        buf[p] = _US
        p = _put_hex(buf, p + 1, b.stored_wh, 6)
        buf[p] = _US
        p = _put_hex(buf, p + 1, b.energy_out_wh, 6)
        buf[p] = _US
        soc = b.soc_c // 100
        p = _put_hex(buf, p + 1, soc if soc <= 100 else 100, 2)
        return self._end(p)

    def _m_line(self):
        b = self.ctl.brain
        buf = self._line
        p = self._start(77)  # M
        p = _put_hex(buf, p, b.power_in_w, 4)
        buf[p] = _US
        p = _put_hex(buf, p + 1, b.power_out_w, 4)
        buf[p] = _US
        minutes = self._time_to_go_min(b)
        if minutes < 0:
            p = _put_bytes(buf, p + 1, b"XX:XX")
        else:
            p = _put_dec(buf, p + 1, minutes // 60, 2)
            buf[p] = _COLON
            p = _put_dec(buf, p + 1, minutes % 60, 2)
        return self._end(p)

    def _time_to_go_min(self, b):
        """Minutes to empty (discharging) or to full (charging), capped at 99:59; -1 idle."""
        net_w = b.power_in_w - b.power_out_w
        if net_w < 0:
            wh = b.stored_wh
            w = -net_w
        elif net_w > 0:
            full_wh = self.ctl.settings.capacity_ah * self.ctl.snap.pack_mv // 1000
            wh = full_wh - b.stored_wh
            w = net_w
        else:
            return -1
        if wh <= 0:
            return 0
        hours = wh // w
        if hours >= 99:
            return 99 * 60 + 59
        return hours * 60 + (wh - hours * w) * 60 // w

    def _h_line(self):
        buf = self._line
        p = self._start(72)  # H
        soh = self.ctl.brain.soh_pct
        p = _put_hex(buf, p, soh if 0 <= soh <= 100 else 0, 2)
        p = _put_bytes(buf, p, _H_ZEROS)
        return p

    def _b_line(self):
        buf = self._line
        p = self._start(66)  # B
        p = _put_hex(buf, p, self.ctl.settings.capacity_ah, 4)
        p = _put_bytes(buf, p, _B_ZEROS)
        return p


def _parse_int(text):
    """Decimal integer with optional sign, at most 7 digits; None otherwise."""
    if not text or len(text) > 8:
        return None
    start = 1 if text[0] in "+-" else 0
    if start == len(text):
        return None
    for ch in text[start:]:
        if not "0" <= ch <= "9":
            return None
    return int(text)
