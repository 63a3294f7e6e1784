"""The End board's event log (core/events.py): changes recorded with values, the ring wraps,
nothing allocated per cycle, and the app protocol's EV? reply."""
from core import alarms as A
from core import events
from core.app_protocol import AppProtocol
from support import no_alloc
from test_app_protocol import Ctl


class Brain:
    def __init__(self):
        self.alarms = 0
        self.charge_allowed = False
        self.load_allowed = False
        self.uptime_s = 0
        self.current_ma = 0
        self.soc_c = 5000
        self.break_position = 0


class Snap:
    min_mv = 3300
    max_mv = 3310


def test_changes_are_recorded_with_their_values():
    log = events.EventLog()
    b, s = Brain(), Snap()
    log.update(s, b)
    assert log.count == 0                        # boot state: relays off, no alarm
    b.uptime_s, b.charge_allowed, b.load_allowed = 5, True, True
    log.update(s, b)
    b.uptime_s, b.alarms, b.charge_allowed, b.current_ma = 9, A.OVER_VOLTAGE | A.EARLY_WARNING, False, 20000
    s.max_mv = 3702
    log.update(s, b)
    log.update(s, b)                             # no change: nothing new
    got = []
    for n in range(log.count):
        i = log.index(n)
        got.append((log.t_s[i], events.KIND_NAMES[log.kind[i]], events.code_name(log.kind[i], log.code[i]),
                    log.max_mv[i], log.current_ma[i]))
    assert got == [(5, "relay", "charge_on", 3310, 0), (5, "relay", "load_on", 3310, 0),
                   (9, "alarm", "over_voltage", 3702, 20000), (9, "alarm", "early_warning", 3702, 20000),
                   (9, "relay", "charge_off", 3702, 20000)]
    b.alarms = A.EARLY_WARNING
    log.update(s, b)
    i = log.index(log.count - 1)
    assert events.KIND_NAMES[log.kind[i]] == "cleared" and events.code_name(log.kind[i], log.code[i]) == "over_voltage"


def test_every_alarm_bit_is_logged_and_comm_lost_follows_the_break_report():
    """The highest alarm bit (BALANCE_SWITCH_INVALID, 0x10000) is logged too; a comm_lost entry
    takes the break position the chain settles on while the alarm lasts (End blames its own
    input first, the board behind the break reports a frame later), not after it cleared."""
    log = events.EventLog(slots=4)
    b, s = Brain(), Snap()
    b.alarms = A.BALANCE_SWITCH_INVALID
    log.update(s, b)
    assert events.code_name(log.kind[log.index(0)], log.code[log.index(0)]) == "balance_switch_invalid"
    b.alarms |= A.COMM_LOST
    b.break_position = 4
    log.update(s, b)
    lost = log.index(log.count - 1)
    assert events.code_name(log.kind[lost], log.code[lost]) == "comm_lost" and log.break_pos[lost] == 4
    b.break_position = 3
    log.update(s, b)
    assert log.break_pos[lost] == 3
    b.alarms &= ~A.COMM_LOST
    log.update(s, b)
    b.break_position = 0
    log.update(s, b)
    assert log.break_pos[lost] == 3
    for t in range(6):                           # the ring wraps over an open comm_lost entry
        b.alarms = A.COMM_LOST if t == 0 else b.alarms
        b.charge_allowed = not b.charge_allowed
        log.update(s, b)
    b.break_position = 7
    log.update(s, b)
    assert 7 not in [log.break_pos[log.index(n)] for n in range(log.count)
                     if events.code_name(log.kind[log.index(n)], log.code[log.index(n)]) != "comm_lost"]


def test_the_ring_keeps_the_newest_entries():
    log = events.EventLog(slots=4)
    b, s = Brain(), Snap()
    for t in range(10):
        b.uptime_s = t
        b.charge_allowed = not b.charge_allowed
        log.update(s, b)
    assert log.count == 4 and log.total == 10
    assert [log.t_s[log.index(n)] for n in range(4)] == [6, 7, 8, 9]


def test_update_allocates_nothing():
    log = events.EventLog()
    b, s = Brain(), Snap()
    state = [0]

    def cycle():
        state[0] += 1
        b.uptime_s = state[0]
        b.alarms = A.UNDER_VOLTAGE if state[0] & 1 else 0
        b.load_allowed = not (state[0] & 1)
        log.update(s, b)
    assert no_alloc(cycle)


def test_ev_query_lists_the_log():
    ctl = Ctl(4)
    ctl.events = events.EventLog()
    b = Brain()
    b.uptime_s, b.charge_allowed = 3, True
    ctl.events.update(Snap(), b)
    app = AppProtocol(ctl)
    out = []
    slot = app.open(lambda buf, n: out.append(bytes(buf[:n])))
    app.feed(b"EV?\r", 4, slot)
    assert b"".join(out) == b"ERR:login required\rNA\r"
    del out[:]
    app.feed(b"PW1234!\r", 8, slot)
    app.feed(b"EV?\r", 4, slot)
    assert b"".join(out) == b"OK\rEV:1 3 relay charge_on 3300 3310 0 5000 0\rOK\r"
