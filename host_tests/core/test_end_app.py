"""End board services: settings through the app (validated, atomic, applied to the brain),
fail-safe without a settings file, radio faults kept away from the relays, the 5 s button,
extended output only after the first complete frame, state saving. Both interpreters."""
from core import alarms
from core import settings as cs
from core.snapshot import CellStatus
from roles import end
from fakes import Cell
from support import tmpdir


class Board:
    NAME = "test"
    LINK_CYCLE_MS = 1000


class Rx:
    def read(self):
        return -1  # core.codec.NONE: nothing on the wire


class Tx:
    def __init__(self):
        self.bursts = []

    def write(self, buf, n):
        self.bursts.append(bytes(buf[:n]))


class Ble:
    def __init__(self, fail=False):
        self.fail = fail
        self.started = 0
        self.disconnects = 0
        self.polls = 0

    def start(self, app, name, compat):
        self.started += 1

    def poll(self):
        self.polls += 1
        if self.fail:
            raise OSError(-5)

    def disconnect_all(self):
        self.disconnects += 1


class Hw:
    def __init__(self, data_dir, ble=None):
        self.data_dir = data_dir
        self.link_rx = Rx()
        self.extout_tx = Tx()
        self.ble = ble
        self.charge = None
        self.load = None

    def set_charge_relay(self, on):
        self.charge = on

    def set_load_relay(self, on):
        self.load = on

    def set_charge_led(self, on):
        pass

    def set_load_led(self, on):
        pass


class Out:
    def __init__(self):
        self.data = b""

    def __call__(self, buf, n):
        self.data += bytes(buf[:n])


def make(ble=None, with_settings=None):
    d = tmpdir()
    if with_settings is not None:
        cs.save(d + "/settings.json", with_settings)
    hw = Hw(d, ble)
    role = end.make(hw, Board(), cell=Cell())
    out = Out()
    slot = role.app.open(out)
    return role, hw, out, slot, d


def say(role, out, line, slot=0):
    out.data = b""
    role.app.feed(line + b"\r", -1, slot)
    return out.data


def fill_chain(snap, n=4, mv=3300):
    snap.valid = True
    snap.comm_ok = True
    snap.cell_count = n
    snap.cells_min, snap.cells_max = 2, 4
    for i in range(n):
        snap.cell_mv[i] = mv
        snap.cell_temp_dc[i] = 250
        snap.cell_status[i] = 0
    snap.min_mv, snap.min_mv_cell, snap.max_mv, snap.max_mv_cell = mv, 1, mv, 1
    snap.min_temp_dc, snap.min_temp_cell, snap.max_temp_dc, snap.max_temp_cell = 250, 1, 250, 1
    snap.pack_mv = mv * n


def test_no_settings_file_keeps_relays_off_until_a_chemistry_is_chosen():
    role, hw, out, slot, d = make()
    role.cycle(1000)
    assert hw.charge is False and hw.load is False
    assert not role.settings.is_configured()
    assert say(role, out, b"PW1234!", slot) == b"OK\r"
    assert say(role, out, b"CH:lifepo4!", slot) == b"OK\r"
    loaded, status = cs.load(d + "/settings.json")
    assert status == cs.LOADED and loaded.chemistry == cs.LIFEPO4
    assert role.settings.is_configured()
    role.cycle(1000)
    assert not role.brain.alarms & alarms.SETTINGS_INVALID
    assert role.brain.alarms & alarms.COMM_LOST      # still nothing from the chain
    assert hw.charge is False and hw.load is False


def test_rejected_setting_changes_nothing_and_names_the_field():
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    say(role, out, b"PW1234!", slot)
    reply = say(role, out, b"S:vmax_mv=9000!", slot)
    assert reply.startswith(b"ERR:") and reply.endswith(b"\rNA\r") and b"vmax_mv" in reply and b"1500..5000" in reply
    loaded, _ = cs.load(d + "/settings.json")
    assert loaded.vmax_mv == 3700 and role.settings.vmax_mv == 3700
    assert say(role, out, b"S:vmax_mv=3650!", slot) == b"OK\r"
    loaded, _ = cs.load(d + "/settings.json")
    assert loaded.vmax_mv == 3650 and role.settings.vmax_mv == 3650
    assert say(role, out, b"S:comm_timeout_cycles=5!", slot) == b"OK\r"
    assert role.comm_timeout_cycles == 5


def test_unauthenticated_write_is_refused():
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    assert say(role, out, b"S:vmax_mv=3650!", slot).endswith(b"\rNA\r")
    assert role.settings.vmax_mv == 3700


def test_radio_fault_never_reaches_the_relays():
    ble = Ble(fail=True)
    role, hw, out, slot, d = make(ble=ble, with_settings=cs.preset(cs.LIFEPO4))
    assert ble.started == 1
    fill_chain(role.snap)
    for _ in range(5):
        role.poll()          # raises inside the BLE stack every time
        role.services.update(role.snap, role.brain, 1000)
    assert ble.polls == 5
    assert role.services.transport_errors == 5
    assert "OSError" in role.services.last_transport_error


def test_long_press_resets_password_and_drops_sessions():
    ble = Ble()
    role, hw, out, slot, d = make(ble=ble, with_settings=cs.preset(cs.NMC))
    say(role, out, b"PW1234!", slot)
    assert say(role, out, b"PC:1234:987654!", slot) == b"OK\r"
    loaded, _ = cs.load(d + "/settings.json")
    assert loaded.pw_hash != ""
    say(role, out, b"PW987654!", slot)
    assert role.app.logged_in(slot)
    role.cell.long = True
    role.tick(100)
    assert role.cell.confirmed == 1
    assert not role.app.logged_in(slot)
    assert ble.disconnects == 1 and ble.started == 2
    assert role.settings.pw_hash == ""
    assert say(role, out, b"PW1234!", slot) == b"OK\r"


def test_extended_output_waits_for_the_first_complete_frame():
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    services = role.services
    for _ in range(5):
        services.update(role.snap, role.brain, 1000)
    assert hw.extout_tx.bursts == []
    fill_chain(role.snap)
    role.snap.hold()            # as the End role's cycle does after every frame
    for _ in range(3):
        services.update(role.snap, role.brain, 1000)
    assert len(hw.extout_tx.bursts) == 3
    assert all(len(b) == 58 for b in hw.extout_tx.bursts)
    role.snap.comm_ok = False   # a lost link afterwards is reported, not silenced
    services.update(role.snap, role.brain, 1000)
    assert len(hw.extout_tx.bursts) == 4
    assert hw.extout_tx.bursts[-1][30] & 0x04
    assert hw.extout_tx.bursts[-1][25] == hw.extout_tx.bursts[0][25] > 0   # same N (issue 22)


def test_state_is_saved_when_the_brain_asks():
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    role.brain.should_save = True
    role.services.update(role.snap, role.brain, 1000)
    assert role.services.saves == 1
    import os
    assert "soc.json" in os.listdir(d)


def test_stale_cells_do_not_enable_relays():
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    for _ in range(10):
        role.cycle(1000)    # nothing ever arrives on the link
    assert hw.charge is False and hw.load is False
    assert not role.snap.comm_ok
    assert role.snap.cell_status[0] & CellStatus.STALE == 0  # no cells known at all


def test_cycle_setting_sets_the_end_board_cycle():
    s = cs.preset(cs.LIFEPO4)
    s.cycle_ms = 500
    role, hw, out, slot, d = make(with_settings=s)
    assert role.cycle_ms == 500
    say(role, out, b"PW1234!", slot)
    assert say(role, out, b"S:cycle_ms=1000!", slot) == b"OK\r"
    assert role.cycle_ms == 1000
    assert say(role, out, b"S:cycle_ms=700!", slot).endswith(b"\rNA\r")
    assert role.cycle_ms == 1000


def test_settings_file_with_out_of_range_value_keeps_relays_off():
    """Issue 13: a settings file with T-max 85 degC (old firmware accepted it) -> SETTINGS_INVALID,
    both relays off, the app shows the not-configured defaults (never the clamped value)."""
    from core import store
    d = tmpdir()
    values = cs.preset(cs.LIFEPO4).to_dict()
    values["tmax_dc"] = 850
    store.save(d + "/settings.json", cs.FILE_KIND, cs.FILE_VERSION, values)
    hw = Hw(d)
    role = end.make(hw, Board(), cell=Cell())
    fill_chain(role.snap)
    role.cycle(1000)
    assert role.brain.alarms & alarms.SETTINGS_INVALID
    assert hw.charge is False and hw.load is False
    assert not role.settings.is_configured() and role.settings.tmax_dc != 850


def test_settings_writes_are_rate_limited_and_coalesced():
    """Issue 13: a script could write the settings file without limit (flash wear)."""
    from roles.end_app import SETTINGS_WRITE_BURST, SETTINGS_WRITE_REFILL_MS
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    services = role.services
    say(role, out, b"PW1234!", slot)
    saves0 = services.write_budget.tokens
    for _ in range(50):                                    # same value again: no flash write
        assert say(role, out, b"S:vmax_mv=3700!", slot) == b"OK\r"
    assert services.write_budget.tokens == saves0
    for i in range(SETTINGS_WRITE_BURST):
        assert say(role, out, b"S:capacity_ah=%d!" % (101 + i), slot) == b"OK\r"
    reply = say(role, out, b"S:capacity_ah=99!", slot)
    assert reply.startswith(b"ERR:settings write limit") and reply.endswith(b"\rNA\r"), reply
    assert b"try again in 60 s" in reply
    assert role.settings.capacity_ah == 100 + SETTINGS_WRITE_BURST
    assert cs.load(d + "/settings.json")[0].capacity_ah == 100 + SETTINGS_WRITE_BURST
    role.services.update(role.snap, role.brain, SETTINGS_WRITE_REFILL_MS)
    assert say(role, out, b"S:capacity_ah=99!", slot) == b"OK\r"
    assert say(role, out, b"S:capacity_ah=98!", slot).endswith(b"\rNA\r")
    role.services.button_press()                      # the button always resets the password
    assert role.settings.pw_hash == ""


def test_password_lockout_survives_a_reboot():
    from core import password
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    for _ in range(password.GLOBAL_FREE_FAILURES + 1):    # a new connection per guess
        role.app.close(slot)
        slot = role.app.open(out)
        assert say(role, out, b"PW9999!", slot) == b"NA\r"
    role2 = end.make(Hw(d), Board(), cell=Cell())         # reboot: same data folder
    out2 = Out()
    slot2 = role2.app.open(out2)
    assert say(role2, out2, b"PW1234!", slot2) == b"NA\r"   # still locked
    role2.services.update(role2.snap, role2.brain, password.GLOBAL_LOCK_MS)
    assert say(role2, out2, b"PW1234!", slot2) == b"OK\r"


def test_app_protocol_is_built_at_its_first_use():
    d = tmpdir()
    ble = Ble()
    role = end.make(Hw(d, ble), Board(), cell=Cell())
    services = role.services
    assert ble.started == 1 and services._app is None      # advertising, no protocol yet
    services.update(role.snap, role.brain, 1000)           # cycles run without it
    assert services._app is None
    out = Out()
    slot = services.transport_app.open(out, True)          # what a BLE connection does
    assert services._app is not None and role.app is services._app
    services.transport_app.feed(b"F?\r", -1, slot)
    assert out.data.startswith(b"F:") and out.data.endswith(b"OK\r")
    services.transport_app.close(slot)
    assert not role.app.logged_in(slot)


def test_a_lock_built_late_has_run_since_boot():
    from core import password
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    for _ in range(password.GLOBAL_FREE_FAILURES + 1):
        role.app.close(slot)
        slot = role.app.open(out)
        say(role, out, b"PW9999!", slot)
    role2 = end.make(Hw(d), Board(), cell=Cell())          # reboot; nobody connects for 30 s
    for _ in range(password.GLOBAL_LOCK_MS // 1000):
        role2.services.update(role2.snap, role2.brain, 1000)
    assert role2.services._app is None
    out2 = Out()
    slot2 = role2.app.open(out2)                            # the lock loaded now has expired
    assert say(role2, out2, b"PW1234!", slot2) == b"OK\r"


class _NoRoomForTheApp:
    def __init__(self, *a, **k):
        raise MemoryError("no room")


class _FakeAppModule:
    AppProtocol = _NoRoomForTheApp


def test_button_resets_the_password_even_without_room_for_the_app():
    import sys
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    say(role, out, b"PW1234!", slot)
    assert say(role, out, b"PC:1234:987654!", slot) == b"OK\r" and role.settings.pw_hash != ""
    role2 = end.make(Hw(d), Board(), cell=Cell())           # reboot, app not built yet
    real = sys.modules["core.app_protocol"]
    sys.modules["core.app_protocol"] = _FakeAppModule
    try:
        role2.services.button_press()
    finally:
        sys.modules["core.app_protocol"] = real
    assert role2.settings.pw_hash == "" and role2.services.transport_errors == 1
    assert role2.hw.charge is not None                      # the relays were never left undecided


def test_a_short_button_press_opens_the_owner_window():
    """Issue 21: the owner's way in that a stranger's guesses cannot block."""
    from core import password
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    for _ in range(password.GLOBAL_FREE_FAILURES + 6):
        role.services.update(role.snap, role.brain, role.app.lockout.global_remaining_ms)
        role.app.close(slot)
        slot = role.app.open(out)
        say(role, out, b"PW9999!", slot)
    assert say(role, out, b"PW1234!", slot) == b"NA\r"      # the stranger's lock
    role.cell.short_press = True
    role.tick(10)
    assert role.cell.confirmed >= 1                         # fast flash: window open
    assert say(role, out, b"PW1234!", slot) == b"OK\r"


def test_event_log_survives_an_end_board_reset():
    """Issue 22: the log is needed after the reboot that follows a fault. Entries go to flash
    in the post-frame window (rate-limited), a new End role on the same data directory reads
    them back, with a boot entry between the runs; one break position for one break."""
    from core import events
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    s = role.services
    log = s.events
    assert events.KIND_NAMES[log.kind[log.index(log.count - 1)]] == "boot"
    b = role.brain
    b.alarms = alarms.COMM_LOST
    b.break_position = 3            # End blames its own input first ...
    s.update(role.snap, b, 1000)
    b.charge_allowed = False
    b.break_position = 4            # ... the board behind the break reports a frame later
    s.update(role.snap, b, 1000)
    held = [log.break_pos[log.index(n)] for n in range(1, log.count)]
    assert held and all(p == 4 for p in held), held       # one break, one position
    for _ in range(12):
        s.update(role.snap, b, 1000)
    assert s.events_saves >= 1 and not log.dirty
    before = [(log.kind[log.index(n)], log.code[log.index(n)], log.break_pos[log.index(n)])
              for n in range(log.count)]
    role2 = end.make(Hw(d), Board(), cell=Cell())
    log2 = role2.services.events
    after = [(log2.kind[log2.index(n)], log2.code[log2.index(n)], log2.break_pos[log2.index(n)])
             for n in range(log2.count)]
    assert after[:-1] == before and after[-1][0] == events.BOOT
    assert log2.total == log.total + 1
    assert events.break_text(4) == "board 3 or the wire after it (to board 4)"


def test_damaged_event_file_starts_an_empty_log():
    from core import events
    role, hw, out, slot, d = make(with_settings=cs.preset(cs.LIFEPO4))
    with open(d + "/events.json", "w") as f:
        f.write("cellchain events 1 0000\n{broken")
    role2 = end.make(Hw(d), Board(), cell=Cell())
    log = role2.services.events
    assert log.count == 1 and log.kind[log.index(0)] == events.BOOT
