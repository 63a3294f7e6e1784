"""App protocol: gen3 commands and data lines byte for byte, login, lockout, extensions,
malformed input, allocation-free paths (both interpreters)."""
from core import alarms, app_protocol, password, settings
from core.app_protocol import AppProtocol
from core.snapshot import CellStatus, PackSnapshot, SensorFlags
from fakes import Brain
from support import no_alloc


class Ctl:
    """The End role's controller, built from the real Settings and PackSnapshot. Changes go
    through core.settings (atomic); ``saved`` counts what the End role would write."""

    def __init__(self, cells=4):
        self.settings = settings.preset(settings.LIFEPO4)
        self.snap = PackSnapshot()
        self.brain = Brain(charge_allowed=True, load_allowed=True, soc_c=10000, soc_calibrated=True,
                           current_ma=1000, charge_ma=1000, charge_cycles=3, soh_pct=95, uptime_s=3600)
        self.firmware_version = (0, 1, 2)
        self.saved = 0
        self.zeroed = 0
        fill(self.snap, cells)

    def apply_setting(self, name, value):
        msg = settings.apply(self.settings, name, value)
        if msg is None:
            self.saved += 1
        return msg

    def set_password_hash(self, salt, pw_hash):
        self.settings.pw_salt = salt
        self.settings.pw_hash = pw_hash
        self.saved += 1

    def select_preset(self, chemistry):
        msg = settings.apply_preset(self.settings, chemistry)
        if msg is None:
            self.saved += 1
        return msg

    def set_mode(self, mode):
        return self.apply_setting("mode", mode)

    def zero_current(self):
        if self.brain.current_ma > 5000:
            return "current too high to zero"
        self.zeroed += 1
        return None


def fill(snap, cells, mv=3500, temp_dc=240):
    snap.valid = True
    snap.comm_ok = True
    snap.cell_count = cells
    for i in range(cells):
        snap.cell_mv[i] = mv
        snap.cell_temp_dc[i] = temp_dc
        snap.cell_status[i] = CellStatus.BALANCING
        snap.cell_age[i] = 0x30
    snap.pack_mv = mv * cells
    snap.min_mv, snap.min_mv_cell = mv, 1
    snap.max_mv, snap.max_mv_cell = mv, cells
    snap.min_temp_dc, snap.min_temp_cell = temp_dc, 1
    snap.max_temp_dc, snap.max_temp_cell = temp_dc, cells
    snap.s1_ma, snap.s1_flags = 1000, SensorFlags.PRESENT
    snap.s2_ma, snap.s2_flags = 500, SensorFlags.PRESENT


class Out:
    def __init__(self):
        self.data = bytearray()

    def write(self, buf, n):
        for i in range(n):
            self.data.append(buf[i])

    def take(self):
        d = bytes(self.data)
        self.data = bytearray()
        return d


class Counter:
    """Allocation-free writer for the heap-locked tests."""

    def __init__(self):
        self.bytes = 0
        self.lines = 0

    def write(self, buf, n):
        self.bytes += n
        if buf[n - 1] == 13:
            self.lines += 1


def make(cells=4):
    ctl = Ctl(cells)
    app = AppProtocol(ctl)
    out = Out()
    slot = app.open(out.write)
    return ctl, app, out, slot


def cmd(app, out, line, slot=0):
    app.feed(line, len(line), slot)
    return out.take()


def login(app, out, slot=0):
    assert cmd(app, out, b"PW1234!\r", slot) == b"OK\r"


# ---- gen3 commands ------------------------------------------------------------------------

def test_login_default_password():
    ctl, app, out, slot = make()
    assert slot == 0
    assert not app.logged_in(0)
    assert cmd(app, out, b"PW1111!\r") == b"NA\r"
    assert not app.logged_in(0)
    assert cmd(app, out, b"PW1234!\r") == b"OK\r"
    assert app.logged_in(0)


def test_stream_refused_without_login():
    ctl, app, out, slot = make()
    assert cmd(app, out, b"E!\r") == b"NA\r"
    app.stream_round()
    assert out.take() == b""
    login(app, out)
    assert cmd(app, out, b"E!\r") == b"OK\r"
    assert app.streaming(0)
    assert cmd(app, out, b"D!\r") == b"OK\r"
    assert not app.streaming(0)
    app.stream_round()
    assert out.take() == b""


def test_keepalive_dollar_has_no_reply_and_is_ignored_inside_lines():
    ctl, app, out, slot = make()
    assert cmd(app, out, b"$") == b""
    assert cmd(app, out, b"$$$") == b""
    assert cmd(app, out, b"PW12$34!\r") == b"OK\r"  # keep-alive interleaved with a command
    assert cmd(app, out, b"\r") == b""              # empty line: nothing
    assert cmd(app, out, b"D!\r\n") == b"OK\r"      # CRLF tolerated


def test_version_line_and_checksum():
    ctl, app, out, slot = make()
    ctl.firmware_version = (0, 1, 2)
    reply = cmd(app, out, b"V@\r")  # no login needed
    assert reply == b"012_00_01_02_004_4A\r"
    # checksum: every byte before it except '_'
    body = reply[:-3]
    assert sum(b for b in body if b != 0x5F) & 0xFF == 0x4A
    assert app_protocol.checksum("333_03_05_03_DBB_") == 0x8C
    ctl.firmware_version = (3, 3, 3)
    ctl.snap.cell_count = 16
    assert cmd(app, out, b"V@\r") == b"333_03_03_03_010_53\r"


def test_commands_split_across_writes():
    ctl, app, out, slot = make()
    for ch in b"PW1234!":
        app.feed(bytes([ch]), 1, 0)
        assert out.take() == b""
    app.feed(b"\rE", 2, 0)
    assert out.take() == b"OK\r"
    app.feed(b"!\r", 2, 0)
    assert out.take() == b"OK\r"


# ---- the data round -----------------------------------------------------------------------

ROUND_4S = (
    b"C_01_04_2BC_12C_00\r"
    b"C_02_04_2BC_12C_00\r"
    b"C_03_04_2BC_12C_00\r"
    b"C_04_04_2BC_12C_00\r"
    b"U_0AF0_+0014_+0014_+000A\r"
    b"V_2BC_01_2BC_04_2A8\r"
    b"T_12C_01_12C_04\r"
    b"E_000000_000000_000000_64\r"
    b"M_0000_0000_XX:XX\r"
    b"H_5F_0000_0000_00_000000_000000\r"
    b"B_0064_0000_0000_0000\r"
    b"CS:001_0130013001300130\r"
)


def test_stream_round_exact_bytes():
    ctl, app, out, slot = make(4)
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    assert out.take() == ROUND_4S


def test_stream_round_values_and_signs():
    ctl, app, out, slot = make(3)
    snap = ctl.snap
    snap.cell_mv[1] = 3333         # 666.6 -> 667 = 29B
    snap.cell_temp_dc[1] = -105    # -10.5 degC -> raw 265.5 -> 266 = 10A
    snap.cell_status[1] = CellStatus.BALANCING
    snap.cell_age[1] = 0
    snap.cell_status[2] = CellStatus.TEMP_SENSOR_FAULT | CellStatus.VOLT_SENSOR_FAULT
    snap.pack_mv = 10333
    snap.min_mv, snap.min_mv_cell = 3333, 2
    snap.max_mv, snap.max_mv_cell = 3500, 1
    snap.min_temp_dc, snap.min_temp_cell = -105, 2
    snap.max_temp_dc, snap.max_temp_cell = 240, 1
    snap.s1_ma = 0
    snap.s2_flags = 0              # sensor 2 absent
    b = ctl.brain
    b.current_ma = -12345          # -246.9 steps -> -247 = F7
    b.energy_in_wh, b.stored_wh, b.energy_out_wh = 0x1234, 2000, 0xABCDEF
    b.soc_c = 5049                 # 50 %
    b.power_in_w, b.power_out_w = 0, 500
    b.soh_pct = 100
    ctl.settings.capacity_ah = 280
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    assert out.take() == (
        b"C_01_03_2BC_12C_00\r"
        b"C_02_03_29B_10A_00\r"
        b"C_03_03_XXX_10A_86\r"
        b"U_XXXX_+0000_-00F7_XXXXX\r"
        b"V_29B_02_2BC_01_2A8\r"
        b"T_10A_02_12C_01\r"
        b"E_001234_0007D0_ABCDEF_32\r"
        b"M_0000_01F4_04:00\r"
        b"H_64_0000_0000_00_000000_000000\r"
        b"B_0118_0000_0000_0000\r"
        b"CS:001_013001000630\r"
    )


def test_time_to_go_charging_and_cap():
    ctl, app, out, slot = make(4)
    b = ctl.brain
    ctl.settings.capacity_ah = 100   # 100 Ah * 14.0 V = 1400 Wh full
    b.stored_wh = 700
    b.power_in_w = 280               # 700 Wh / 280 W = 2 h 30 min
    assert app._time_to_go_min(b) == 150
    b.power_in_w = 1
    assert app._time_to_go_min(b) == 99 * 60 + 59
    b.stored_wh = 1500               # above full: zero
    assert app._time_to_go_min(b) == 0


def test_no_cell_communication_sends_x_fields():
    ctl, app, out, slot = make(4)
    ctl.snap.clear()
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    data = out.take()
    assert not data.startswith(b"C_")
    assert data.startswith(b"U_XXXX_")
    assert b"V_XXX_XX_XXX_XX_2A8\r" in data
    assert b"T_XXX_XX_XXX_XX\r" in data


def test_comm_loss_keeps_the_chain_with_held_values_flagged():
    """Issue 22: both gen3 readers read an X field as 0 (0 V, -276 degC) and a changed count
    rebuilds their table: during a break the round keeps N and sends the last heard values,
    every C line flagged 0x80, the currents X (never +0000), the pack the last trusted one."""
    for broken in ("comm_ok", "alarm"):
        ctl, app, out, slot = make(4)
        snap = ctl.snap
        snap.hold()                          # the End role's cycle, while the chain was complete
        want = [b"C_0%d_04_%03X_%03X_80" % (i + 1, (snap.cell_mv[i] + 2) // 5,
                                            (snap.cell_temp_dc[i] // 10 * 10 + 2765) // 10) for i in range(4)]
        if broken == "comm_ok":
            snap.comm_ok = False
            snap.cell_count = 2              # the boards before the break
        else:
            ctl.brain.alarms = alarms.COMM_LOST
        login(app, out)
        cmd(app, out, b"E!\r")
        app.stream_round()
        lines = out.take().split(b"\r")
        assert lines[:4] == want
        assert lines[4] == b"U_%04X_XXXXX_XXXXX_XXXXX" % ((sum(snap.cell_mv[:4]) + 2) // 5)
        assert not lines[5].startswith(b"V_XXX") and lines[6] == b"T_XXX_XX_XXX_XX"
        st = cmd(app, out, b"ST?\r")
        assert b" pack_mv=-1 " in st and b" min_mv=-1 " in st
        assert cmd(app, out, b"CL?\r").count(b" X X 80") == 4


def test_unknown_pack_voltage_without_a_held_one_is_xxxx():
    ctl, app, out, slot = make(4)
    ctl.snap.comm_ok = False
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    assert out.take().split(b"\r")[0].startswith(b"U_XXXX_")   # no cells ever heard: no round of C lines


def test_c_lines_carry_only_gen3_problem_bits():
    ctl, app, out, slot = make(4)
    snap = ctl.snap
    for i in range(4):
        snap.cell_status[i] = (CellStatus.NOT_CALIBRATED | CellStatus.BALANCING
                               | CellStatus.WATCHDOG_RESET | CellStatus.DERATED)
    snap.cell_status[3] |= CellStatus.TEMP_SENSOR_FAULT
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    lines = out.take().split(b"\r")
    assert [ln.count(b"_") for ln in lines[:4]] == [5] * 4      # gen3: tag + 5 fields
    # an NTC fault alone also sets 0x80, inside aiobmsble's problem mask 0x0EFC (issue 22)
    assert [ln[-2:] for ln in lines[:4]] == [b"00", b"00", b"00", b"82"]
    assert lines[11] == b"CS:001_6930693069306B30"          # the full bits and the age


def test_pulled_round_is_the_pushed_round_and_waits_for_room():
    ctl, app, out, slot = make(4)
    pulled = Out()
    ps = app.open(pulled.write, True)
    login(app, out)
    cmd(app, out, b"E!\r")
    app.feed(b"PW1234!\rE!\r", 11, ps)
    pulled.take()
    app.stream_round()
    assert out.take() == ROUND_4S and pulled.take() == b""       # nothing until it pulls
    assert app.pull_lines(ps, 10) == 0                           # no whole line fits
    got = b""
    while True:
        n = app.pull_lines(ps, 40)   # one or two lines at a time
        if n == 0:
            break
        got += pulled.take()
    assert got == ROUND_4S
    # two rounds asked for while the first is going out: it ends whole, then one more
    app.stream_round()
    app.pull_lines(ps, 40)
    app.stream_round()
    app.stream_round()
    while app.pull_lines(ps, 1000):
        pass
    assert pulled.take() == ROUND_4S * 2


def test_pull_lines_allocation_free():
    ctl = Ctl(120)
    app = AppProtocol(ctl)
    counter = Counter()
    ps = app.open(counter.write, True)
    app.feed(b"PW1234!\rE!\r", 11, ps)

    def one_round():
        app.stream_round()
        while app.pull_lines(ps, 100):
            pass
    counter.lines = 0
    one_round()
    assert counter.lines == 99 + 7 + 8
    assert no_alloc(one_round, 3)


def test_more_than_99_cells_gen3_lines_stop_at_99():
    ctl, app, out, slot = make(120)
    ctl.snap.max_mv_cell = 120
    login(app, out)
    cmd(app, out, b"E!\r")
    app.stream_round()
    data = out.take()
    lines = data.split(b"\r")
    c_lines = [ln for ln in lines if ln.startswith(b"C_")]
    assert len(c_lines) == 99
    assert c_lines[0] == b"C_01_99_2BC_12C_00"
    assert c_lines[-1] == b"C_99_99_2BC_12C_00"
    # cellchain's own CS lines: status and age of all 120 cells, 16 per line
    cs = [ln for ln in lines if ln.startswith(b"CS:")]
    assert len(cs) == 8 and cs[0] == b"CS:001_" + b"0130" * 16 and cs[7] == b"CS:113_" + b"0130" * 8
    assert b"U_14820_" in data          # pack voltage still covers all 120 cells (420 V)
    assert b"V_2BC_01_2BC_120_2A8\r" in data
    # every cell, also beyond 99, on the extension query
    cl = cmd(app, out, b"CL?\r").split(b"\r")
    assert cl[0] == b"CL:1 3500 240 01"
    assert cl[119] == b"CL:120 3500 240 01"
    assert cl[120] == b"OK"


def test_stream_round_allocation_free():
    ctl = Ctl(16)
    app = AppProtocol(ctl)
    counter = Counter()
    app.open(counter.write)
    app.feed(b"PW1234!\rE!\r", 11, 0)
    counter.bytes = 0
    counter.lines = 0
    app.stream_round()
    assert counter.lines == 16 + 7 + 1
    ctl.brain.power_out_w = 300
    ctl.brain.current_ma = -6000
    assert no_alloc(app.stream_round)


def test_feed_bytes_allocation_free():
    ctl = Ctl(4)
    app = AppProtocol(ctl)
    counter = Counter()
    app.open(counter.write)
    keep = b"$"
    part = b"S:vmax_mv=3650"  # no CR: just collected

    def feed_keepalive():
        app.feed(keep, 1, 0)

    def feed_part():
        app.sessions[0].n = 0
        app.feed(part, 14, 0)

    assert no_alloc(feed_keepalive)
    assert no_alloc(feed_part)
    assert counter.bytes == 0


# ---- malformed and oversized --------------------------------------------------------------

def test_oversized_line_dropped_without_growing():
    ctl, app, out, slot = make()
    buf_before = app.sessions[0].buf
    junk = b"A" * 1000
    app.feed(junk, len(junk), 0)
    assert out.take() == b""
    assert app.sessions[0].n <= app_protocol.LINE_MAX
    assert app.sessions[0].buf is buf_before and len(buf_before) == app_protocol.LINE_MAX
    assert cmd(app, out, b"PW1234!\r") == b"ERR:line too long\rNA\r"   # tail of the long line
    assert not app.logged_in(0)
    assert cmd(app, out, b"PW1234!\r") == b"OK\r"                 # next line is fine


def test_line_of_exactly_max_length_is_parsed():
    ctl, app, out, slot = make()
    line = b"X" * app_protocol.LINE_MAX + b"\r"
    assert cmd(app, out, line) == b"ERR:unknown command\rNA\r"
    line = b"X" * (app_protocol.LINE_MAX + 1) + b"\r"
    assert cmd(app, out, line) == b"ERR:line too long\rNA\r"


def test_junk_gets_error_never_crash():
    ctl, app, out, slot = make()
    assert cmd(app, out, b"\x00\xff\x07\r") == b"ERR:bad character\rNA\r"
    assert cmd(app, out, b"hello\r") == b"ERR:unknown command\rNA\r"
    assert cmd(app, out, b"PW!\r") == b"NA\r"
    assert cmd(app, out, b"PW12a4!\r") == b"NA\r"
    assert cmd(app, out, b"E\r") == b"ERR:unknown command\rNA\r"
    login(app, out)
    for line in (b"S:\r", b"S:!\r", b"S:=5!\r", b"S:vmax_mv!\r", b"S:vmax_mv=!\r",
                 b"S:vmax_mv=+!\r", b"S:vmax_mv=1e3!\r", b"S:vmax_mv=99999999999!\r",
                 b"CH:!\r", b"CH:99!\r", b"MO:fast!\r", b"PC:1234!\r", b"PC:::!\r",
                 b"ZC\r", b"A\r", b"\x7f\r"):
        reply = cmd(app, out, line)
        assert reply.startswith(b"ERR:") and reply.endswith(b"\rNA\r"), (line, reply)
        assert reply.count(b"\r") == 2   # one reason line, one NA
    assert ctl.saved == 0


def test_random_bytes_never_crash():
    ctl, app, out, slot = make()
    login(app, out)
    seed = 12345
    buf = bytearray(300)
    for _ in range(40):
        for i in range(len(buf)):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (seed >> 16) & 0xFF
        app.feed(buf, len(buf), 0)
        app.stream_round()
    out.take()
    assert settings.check(ctl.settings) is None


def test_feed_on_closed_or_bad_slot_is_ignored():
    ctl, app, out, slot = make()
    app.feed(b"PW1234!\r", 8, 3)   # never opened
    app.feed(b"PW1234!\r", 8, 99)  # out of range
    app.feed(b"PW1234!\r", 8, -1)
    assert out.take() == b""


# ---- login, lockout, sessions -------------------------------------------------------------

def test_lockout_after_five_failures_doubles():
    ctl, app, out, slot = make()
    for _ in range(5):
        assert cmd(app, out, b"PW0000!\r") == b"NA\r"
    assert app.lockout.locked()
    assert cmd(app, out, b"PW1234!\r") == b"NA\r"    # right password refused while locked
    assert not app.logged_in(0)
    app.tick(4999)
    assert cmd(app, out, b"PW1234!\r") == b"NA\r"
    app.tick(1)
    assert cmd(app, out, b"PW0000!\r") == b"NA\r"    # 6th failure: 10 s
    app.tick(9999)
    assert cmd(app, out, b"PW1234!\r") == b"NA\r"
    app.tick(1)
    assert cmd(app, out, b"PW1234!\r") == b"OK\r"
    assert app.lockout.failures[0] == 0 and app.lockout.global_failures == 6   # only time forgives


def test_a_strangers_lockout_does_not_keep_the_owner_out():
    """Issue 13: the lockout was shared by all connections."""
    ctl, app, out, slot = make()
    owner = Out()
    s2 = app.open(owner.write)
    assert s2 == 1
    for _ in range(5):
        assert cmd(app, out, b"PW9999!\r") == b"NA\r"
    assert cmd(app, out, b"PW1234!\r") == b"NA\r"          # the stranger's connection is locked
    assert cmd(app, owner, b"PW1234!\r", 1) == b"OK\r"      # the owner's is not
    assert cmd(app, out, b"LK?\r") == b"LK:5000 0 5\rOK\r"   # counted: only time forgives


def test_reconnecting_does_not_buy_guesses():
    ctl, app, out, slot = make()
    for _ in range(password.GLOBAL_FREE_FAILURES + 1):       # a new connection per guess
        app.close(0)
        assert app.open(out.write) == 0
        assert cmd(app, out, b"PW9999!\r") == b"NA\r"
    app.close(0)
    app.open(out.write)
    assert cmd(app, out, b"PW1234!\r") == b"NA\r"          # global backstop: 30 s for everyone
    assert cmd(app, out, b"LK?\r") == b"LK:0 30000 11\rOK\r"
    app.tick(password.GLOBAL_LOCK_MS)
    assert cmd(app, out, b"PW1234!\r") == b"OK\r"
    assert app.lockout.global_failures == 11     # a correct login does not clear it (issue 21)


def test_fences_echo_their_token_without_login():
    ctl, app, out, slot = make()
    assert cmd(app, out, b"ID:a1Z9?\r") == b"ID:a1Z9\r"
    assert cmd(app, out, b"ID:a1Z9?\rF?\rID:b2?\r") == b"ID:a1Z9\rF:0.1.2\rOK\rID:b2\r"
    for bad in (b"ID:?\r", b"ID:a-b?\r", b"ID:" + b"x" * 17 + b"?\r"):
        assert cmd(app, out, bad).endswith(b"\rNA\r")


def test_pv_checks_the_password_and_keeps_the_session():
    """Issue 21: the dashboard tries a page's password with PV on its own logged-in session:
    counted by the lockout like PW, but a wrong one no longer logs the recorder out."""
    ctl, app, out, slot = make()
    login(app, out)
    assert cmd(app, out, b"PV0000!\r") == b"NA\r"
    assert app.logged_in(0) and app.lockout.global_failures == 1
    assert cmd(app, out, b"PV1234!\r") == b"OK\r"
    assert app.logged_in(0) and app.lockout.global_failures == 1
    app.close(0)
    app.open(out.write)
    assert cmd(app, out, b"PV1234!\r") == b"OK\r"
    assert not app.logged_in(0)                          # PV never logs a session in


def test_owner_window_lets_the_owner_past_a_strangers_lock():
    ctl, app, out, slot = make()
    owner = Out()
    assert app.open(owner.write) == 1
    for _ in range(password.GLOBAL_FREE_FAILURES + 8):
        app.tick(app.lockout.global_remaining_ms)
        app.close(0)
        app.open(out.write)
        cmd(app, out, b"PW9999!\r")
    assert cmd(app, owner, b"PW1234!\r", 1) == b"NA\r"    # locked for everyone
    app.owner_window()                                     # short press of the End button
    assert cmd(app, owner, b"PW1234!\r", 1) == b"OK\r"


def test_sessions_are_separate():
    ctl, app, out, slot = make()
    out2 = Out()
    s2 = app.open(out2.write)
    login(app, out, 0)
    cmd(app, out, b"E!\r", 0)
    assert not app.logged_in(s2)
    assert cmd(app, out2, b"E!\r", s2) == b"NA\r"
    app.stream_round()
    assert out.take() == ROUND_4S
    assert out2.take() == b""
    app.feed(b"PW12", 4, 0)                          # half a line on slot 0 ...
    assert cmd(app, out2, b"PW1234!\r", s2) == b"OK\r"  # ... does not mix with slot 1
    app.feed(b"34!\r", 4, 0)
    assert out.take() == b"OK\r"


def test_session_slots_limited_and_reused():
    ctl = Ctl()
    app = AppProtocol(ctl, max_sessions=2)
    outs = [Out(), Out(), Out()]
    assert app.open(outs[0].write) == 0
    assert app.open(outs[1].write) == 1
    assert app.open(outs[2].write) == -1
    app.feed(b"PW1234!\r", 8, 1)
    assert app.logged_in(1)
    app.close(1)
    assert app.open(outs[2].write) == 1
    assert not app.logged_in(1)                      # a new connection starts logged out


def test_wrong_password_logs_out():
    ctl, app, out, slot = make()
    login(app, out)
    cmd(app, out, b"E!\r")
    assert cmd(app, out, b"PW9999!\r") == b"NA\r"
    assert not app.logged_in(0) and not app.streaming(0)


def test_drop_all_sessions():
    ctl, app, out, slot = make()
    out2 = Out()
    app.open(out2.write)
    login(app, out, 0)
    login(app, out2, 1)
    cmd(app, out, b"E!\r", 0)
    app.drop_all_sessions()
    assert not app.logged_in(0) and not app.logged_in(1) and not app.streaming(0)
    app.stream_round()
    assert out.take() == b"" and out2.take() == b""


def test_unauthenticated_requests_change_nothing():
    ctl, app, out, slot = make()
    before = ctl.settings.to_dict()
    for line in (b"S?\r", b"S:vmax_mv=3650!\r", b"PC:1234:5678!\r", b"CH:nmc!\r",
                 b"MO:critical!\r", b"ZC!\r", b"A?\r", b"ST?\r", b"CL?\r"):
        assert cmd(app, out, line) == b"ERR:login required\rNA\r", line
    assert ctl.settings.to_dict() == before
    assert ctl.saved == 0 and ctl.zeroed == 0
    assert cmd(app, out, b"F?\r") == b"F:0.1.2\rOK\r"  # version needs no login


# ---- password change and reset ------------------------------------------------------------

def test_change_password_needs_old_one():
    ctl, app, out, slot = make()
    login(app, out)
    assert cmd(app, out, b"PC:1111:567890!\r") == b"ERR:wrong password\rNA\r"
    assert ctl.settings.pw_hash == ""
    assert cmd(app, out, b"PC:1234:56a!\r") == b"ERR:password must be 6..16 digits\rNA\r"
    assert cmd(app, out, b"PC:1234:5678!\r") == b"ERR:password must be 6..16 digits\rNA\r"
    assert cmd(app, out, b"PC:1234:567890!\r") == b"OK\r"
    st = ctl.settings
    assert len(st.pw_salt) == 16 and len(st.pw_hash) == 64
    assert "567890" not in st.pw_hash
    assert password.check(st.pw_salt, st.pw_hash, "567890")
    out2 = Out()
    s2 = app.open(out2.write)
    assert cmd(app, out2, b"PW1234!\r", s2) == b"NA\r"
    assert cmd(app, out2, b"PW567890!\r", s2) == b"OK\r"


def test_password_change_logs_out_other_sessions():
    ctl, app, out, slot = make()
    out2 = Out()
    s2 = app.open(out2.write)
    login(app, out, 0)
    login(app, out2, s2)
    cmd(app, out2, b"E!\r", s2)
    assert cmd(app, out, b"PC:1234:432100!\r") == b"OK\r"
    assert app.logged_in(0)
    assert not app.logged_in(s2) and not app.streaming(s2)


def test_reset_password_restores_1234_and_drops_sessions():
    ctl, app, out, slot = make()
    login(app, out)
    cmd(app, out, b"PC:1234:987650!\r")
    for _ in range(5):
        cmd(app, out, b"PW0000!\r")
    assert app.lockout.locked()
    app.reset_password()
    assert not app.lockout.locked()
    assert not app.logged_in(0)
    assert ctl.settings.pw_hash == ""
    assert cmd(app, out, b"PW987650!\r") == b"NA\r"
    assert cmd(app, out, b"PW1234!\r") == b"OK\r"


# ---- settings and other extensions --------------------------------------------------------

def test_read_all_settings():
    ctl, app, out, slot = make()
    login(app, out)
    lines = cmd(app, out, b"S?\r").split(b"\r")
    assert lines[0] == b"S:vmin_mv=2900"
    assert lines[2] == b"S:vmax_mv=3700"
    assert b"S:tmin_discharge_dc=-200" in lines
    assert b"S:chemistry=1" in lines
    assert b"S:name=cellchain" in lines
    assert lines[-2] == b"OK" and lines[-1] == b""
    assert len(lines) == len(settings.FIELD_NAMES) + 3
    assert not any(b"pw_" in ln for ln in lines)   # hash and salt never leave the board


def test_write_setting_valid_and_rejected():
    ctl, app, out, slot = make()
    login(app, out)
    assert cmd(app, out, b"S:vmax_mv=3650!\r") == b"OK\r"
    assert ctl.settings.vmax_mv == 3650 and ctl.saved == 1
    before = ctl.settings.to_dict()
    assert cmd(app, out, b"S:vmax_mv=6000!\r") == b"ERR:vmax_mv=6000: must be 1500..5000 mV\rNA\r"
    assert cmd(app, out, b"S:vmax_mv=3300!\r") == \
        b"ERR:vmax_mv=3300: must be 3410..4000 mV (lifepo4 limit; at least vbal_mv + 10 and vnom_mv)\rNA\r"
    assert cmd(app, out, b"S:vmax_mv=abc!\r") == b"ERR:vmax_mv=abc: must be an integer 1500..5000 mV\rNA\r"
    assert cmd(app, out, b"S:pw_hash=00!\r") == b"ERR:unknown setting pw_hash\rNA\r"
    assert cmd(app, out, b"S:loop_count=3!\r") == b"ERR:loop_count=3: must be 1, 2 or 4 turns\rNA\r"
    assert ctl.settings.to_dict() == before and ctl.saved == 1
    assert cmd(app, out, b"S:tmin_charge_dc=-50!\r") == (
        b"ERR:tmin_charge_dc=-50: must be 0..549 0.1 degC (below tmax_dc; no charging below 0 degC"
        b" except LTO)\rNA\r")
    assert cmd(app, out, b"S:tmin_charge_dc=50!\r") == b"OK\r"
    assert ctl.settings.tmin_charge_dc == 50
    assert cmd(app, out, b"S:name=123\\SmartBMS!\r") == b"OK\r"
    assert ctl.settings.name == "123\\SmartBMS"
    assert cmd(app, out, b"S:name=" + b"n" * 21 + b"!\r") == b"ERR:name: must be 1..20 characters\rNA\r"


def test_out_of_range_is_refused_never_clamped():
    """Issue 13: V-max 5000 mV and T-max 85 degC on LiFePO4 answered OK and were cut to
    4000 mV / 70 degC. Now: the reason line, a plain gen3 NA, nothing changed or saved."""
    ctl, app, out, slot = make()
    login(app, out)
    before = ctl.settings.to_dict()
    saved = ctl.saved
    assert cmd(app, out, b"S:vmax_mv=5000!\r") == (
        b"ERR:vmax_mv=5000: must be 3410..4000 mV (lifepo4 limit; at least vbal_mv + 10 and vnom_mv)"
        b"\rNA\r")
    assert cmd(app, out, b"S:tmax_dc=850!\r") == b"ERR:tmax_dc=850: must be -400..700 0.1 degC\rNA\r"
    assert cmd(app, out, b"S:comm_timeout_cycles=30!\r") == \
        b"ERR:comm_timeout_cycles=30: must be 1..10 cycles\rNA\r"
    assert cmd(app, out, b"S:comm_timeout_cycles=6!\r") == \
        b"ERR:comm_timeout_cycles=6: must be 1..5 cycles (at most 5000 ms at cycle_ms=1000)\rNA\r"
    assert cmd(app, out, b"S:vbal_mv=2500!\r") == \
        b"ERR:vbal_mv=2500: must be 3100..3690 mV (200 mV above vmin_mv, 10 mV below vmax_mv)\rNA\r"
    assert ctl.settings.to_dict() == before and ctl.saved == saved
    assert cmd(app, out, b"S?\r").count(b"S:vmax_mv=%d\r" % before["vmax_mv"]) == 1
    assert cmd(app, out, b"S:vmax_mv=4000!\r") == b"OK\r"
    assert b"S:vmax_mv=4000\r" in cmd(app, out, b"S?\r")


def test_preset_mode_zero():
    ctl, app, out, slot = make()
    login(app, out)
    assert cmd(app, out, b"CH:nmc!\r") == b"OK\r"
    assert ctl.settings.chemistry == settings.NMC and ctl.settings.vmax_mv == 4150
    assert cmd(app, out, b"CH:2!\r") == b"OK\r"
    assert ctl.settings.chemistry == settings.LTO
    assert cmd(app, out, b"CH:lead!\r") == b"ERR:chemistry must be lifepo4, lto, nmc or nca (1..4)\rNA\r"
    assert cmd(app, out, b"MO:critical!\r") == b"OK\r"
    assert ctl.settings.mode == settings.CRITICAL
    assert cmd(app, out, b"MO:normal!\r") == b"OK\r"
    assert ctl.settings.mode == settings.NORMAL
    assert cmd(app, out, b"ZC!\r") == b"OK\r"
    assert ctl.zeroed == 1
    ctl.brain.current_ma = 20000
    assert cmd(app, out, b"ZC!\r") == b"ERR:current too high to zero\rNA\r"


def test_alarms_and_break_position():
    ctl, app, out, slot = make()
    login(app, out)
    assert cmd(app, out, b"A?\r") == b"A:0000 0 -\rOK\r"
    ctl.brain.alarms = 0x0021
    ctl.brain.break_position = 7
    assert cmd(app, out, b"A?\r") == b"A:0021 7 under_voltage,comm_lost\rOK\r"


def test_status_line():
    ctl, app, out, slot = make()
    login(app, out)
    reply = cmd(app, out, b"ST?\r")
    assert reply.endswith(b"\rOK\r")
    line = reply.split(b"\r")[0]
    assert line.startswith(b"ST:")
    fields = {}
    for kv in line[3:].decode().split(" "):
        k, v = kv.split("=")
        fields[k] = v
    assert fields["cells"] == "4" and fields["pack_mv"] == "14000"
    assert fields["soc_c"] == "10000" and fields["charge"] == "1" and fields["alarms"] == "0000"


def test_cells_query_marks_faults():
    ctl, app, out, slot = make(2)
    ctl.snap.cell_status[1] = CellStatus.TEMP_SENSOR_FAULT
    ctl.snap.cell_temp_dc[0] = -105
    login(app, out)
    assert cmd(app, out, b"CL?\r") == b"CL:1 3500 -105 01\rCL:2 3500 X 02\rOK\r"


def test_unit_conversions():
    assert app_protocol.mv_5(3500) == 700
    assert app_protocol.mv_5(3502) == 700
    assert app_protocol.mv_5(3503) == 701
    assert app_protocol.mv_5(-1) == 0
    assert app_protocol.ma_50(24) == 0
    assert app_protocol.ma_50(25) == 1
    assert app_protocol.ma_50(-25) == -1
    assert app_protocol.ma_50(-24) == 0
    assert app_protocol.temp_raw(0) == 276
    assert app_protocol.temp_raw(250) == 301
    assert app_protocol.temp_raw(-400) == 236
    assert app_protocol.temp_raw(-30000) == 0


def test_bare_chemistry_write_is_refused_the_lfp_to_4v2_path_is_closed():
    """Issue 20: `S:chemistry=3!` on a running LiFePO4 pack was accepted silently, and then
    `S:vmax_mv=4200!` was within the new (nmc) range: two writes set an LFP pack to charge to
    4.2 V per cell. A chemistry is a preset: the bare field is refused with a reason that names
    the preset command; the next write is judged against LiFePO4 and refused; nothing saved."""
    ctl, app, out, slot = make()
    login(app, out)
    before = ctl.settings.to_dict()
    saved = ctl.saved
    r = cmd(app, out, b"S:chemistry=3!\r")
    assert r.startswith(b"ERR:chemistry=3: a chemistry change moves every limit: use the preset CH:nmc!")
    assert r.endswith(b"\rNA\r")
    assert cmd(app, out, b"S:vmax_mv=4200!\r").startswith(b"ERR:vmax_mv=4200: must be 3410..4000 mV")
    assert ctl.settings.to_dict() == before and ctl.saved == saved
    assert cmd(app, out, b"S:chemistry=1!\r") == b"OK\r"          # unchanged: not a change
    # the preset moves every limit at once
    assert cmd(app, out, b"CH:nmc!\r") == b"OK\r"
    s = ctl.settings
    assert (s.chemistry, s.vmin_mv, s.vbal_mv, s.vmax_mv) == (settings.NMC, 3490, 4000, 4150)


def test_status_pack_voltage_is_unknown_with_a_stuck_cell_adc():
    """Issue 22: `cellchain status` printed 13.206 V (the other cells) with one stuck ADC."""
    ctl, app, out, slot = make(4)
    ctl.snap.hold()
    ctl.snap.cell_status[1] = CellStatus.VOLT_SENSOR_FAULT
    ctl.snap.volt_fault_at = 2
    login(app, out)
    st = cmd(app, out, b"ST?\r")
    assert b" pack_mv=-1 " in st and b"comm=1" in st
    cmd(app, out, b"E!\r")
    app.stream_round()
    lines = out.take().split(b"\r")
    assert lines[1].endswith(b"_84")                           # the stuck cell: flagged, no value
    assert lines[4].startswith(b"U_0AF0_")          # the last trusted pack (14.000 V), not 3 cells
