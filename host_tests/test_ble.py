"""hal/ble.py against a fake ``bluetooth`` module: advertising, several centrals, reconnects,
MTU-sized notifications, congestion, IRQ-only queueing (CPython)."""
import sys
import types

import pytest

from core.app_protocol import AppProtocol
from test_app_protocol import ROUND_4S, Ctl

IRQ_CONNECT, IRQ_DISCONNECT, IRQ_WRITE, IRQ_MTU = 1, 2, 3, 21


class FakeUUID:
    def __init__(self, text):
        self.text = text


class FakeBLE:
    def __init__(self):
        self.is_active = False
        self.cfg = {}
        self.handler = None
        self.adv = []             # (interval, adv_data, resp_data)
        self.notified = []        # (conn, handle, bytes)
        self.values = {}
        self.disconnected = []
        self.congested = 0        # next N notifies raise OSError
        self.room = None          # notifications the link takes until the next poll (None: all)
        self.services = None

    def active(self, on=None):
        if on is not None:
            self.is_active = on
        return self.is_active

    def config(self, **kw):
        self.cfg.update(kw)

    def irq(self, handler):
        self.handler = handler

    def gatts_register_services(self, services):
        self.services = services
        return ((10, 12),)       # TX value handle, RX value handle

    def gatts_set_buffer(self, handle, size, append=False):
        self.buffer = (handle, size, append)

    def gap_advertise(self, interval, adv_data=None, resp_data=None, connectable=True):
        self.adv.append((interval, adv_data, resp_data))

    def gatts_read(self, handle):
        return self.values.get(handle, b"")

    def gatts_notify(self, conn, handle, data):
        if self.congested:
            self.congested -= 1
            raise OSError(12)
        if self.room is not None:
            if self.room <= 0:
                raise OSError(12)     # the stack's buffers are full until the next event
            self.room -= 1
        self.notified.append((conn, handle, bytes(data)))

    def gap_disconnect(self, conn):
        self.disconnected.append(conn)

    # central side helpers
    def central_write(self, conn, data):
        self.values[12] = data
        self.handler(IRQ_WRITE, (conn, 12))

    def received(self, conn):
        return b"".join(d for c, h, d in self.notified if c == conn)


@pytest.fixture()
def ble_mod(monkeypatch):
    fake = types.ModuleType("bluetooth")
    fake.UUID = FakeUUID
    monkeypatch.setitem(sys.modules, "bluetooth", fake)
    monkeypatch.delitem(sys.modules, "hal.ble", raising=False)
    import hal.ble
    return hal.ble


def started(ble_mod, max_conn=2, name="cellchain", compat=False):
    fake = FakeBLE()
    board = types.SimpleNamespace(BLE_MAX_CONN=max_conn)
    t = ble_mod.make(board, ble=fake)
    ctl = Ctl(4)
    app = AppProtocol(ctl)
    t.start(app, name, compat_123=compat)
    return fake, t, ctl, app


def test_advertising_name_and_service(ble_mod):
    fake, t, ctl, app = started(ble_mod)
    assert fake.is_active
    interval, adv, resp = fake.adv[-1]
    assert adv == bytes((2, 1, 6, 10, 9)) + b"cellchain"
    assert len(adv) <= 31 and len(resp) <= 31
    # NUS UUID little-endian in the scan response
    assert resp == bytes((17, 7)) + bytes.fromhex("6e400001b5a3f393e0a9e50e24dcca9e")[::-1]
    svc = fake.services[0]
    assert svc[0].text == ble_mod.NUS_SERVICE
    assert svc[1][0][0].text == ble_mod.NUS_TX and svc[1][0][1] & 0x10
    assert svc[1][1][0].text == ble_mod.NUS_RX and svc[1][1][1] & 0x08


def test_compat_name(ble_mod):
    fake, t, ctl, app = started(ble_mod, compat=True)
    adv = fake.adv[-1][1]
    assert adv.endswith(b"123\\SmartBMS") and adv[4] == 0x09
    assert fake.cfg["gap_name"] == "123\\SmartBMS"
    long_adv = ble_mod.adv_payload("x" * 40)
    assert len(long_adv) == 31 and long_adv[4] == 0x08


def test_login_stream_and_mtu_split(ble_mod):
    fake, t, ctl, app = started(ble_mod)
    fake.handler(IRQ_CONNECT, (5, 0, b"\x00" * 6))
    t.poll()
    fake.central_write(5, b"PW1234!\r")
    fake.central_write(5, b"E!\r")
    t.poll()
    assert fake.received(5) == b"OK\rOK\r"
    fake.notified.clear()
    app.stream_round()
    t.poll()
    assert all(len(d) <= 20 for c, h, d in fake.notified)   # default MTU 23
    assert all(h == 10 for c, h, d in fake.notified)
    assert fake.received(5) == ROUND_4S
    fake.handler(IRQ_MTU, (5, 185))
    fake.notified.clear()
    app.stream_round()
    t.poll()
    assert max(len(d) for c, h, d in fake.notified) == 182
    assert fake.received(5) == ROUND_4S


def test_two_centrals_separate_sessions_and_third_refused(ble_mod):
    fake, t, ctl, app = started(ble_mod, max_conn=2)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    fake.handler(IRQ_CONNECT, (2, 0, b""))
    fake.handler(IRQ_CONNECT, (3, 0, b""))
    assert fake.disconnected == [3] and t.rejected == 1
    t.poll()
    assert t.connections() == 2
    fake.central_write(1, b"PW1234!\r")
    fake.central_write(2, b"PW9999!\r")
    t.poll()
    assert fake.received(1) == b"OK\r"
    assert fake.received(2) == b"NA\r"


def test_reconnect_starts_logged_out_and_readvertises(ble_mod):
    fake, t, ctl, app = started(ble_mod, max_conn=1)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\r")
    t.poll()
    assert app.logged_in(0)
    adv_count = len(fake.adv)
    fake.handler(IRQ_DISCONNECT, (1, 0, b""))
    fake.handler(IRQ_CONNECT, (7, 0, b""))   # before the main loop ran
    t.poll()
    assert not app.logged_in(0)
    fake.central_write(7, b"E!\r")
    t.poll()
    assert fake.received(7) == b"NA\r"
    fake.handler(IRQ_DISCONNECT, (7, 0, b""))
    t.poll()
    assert len(fake.adv) > adv_count
    assert t.connections() == 0


def test_congestion_keeps_data(ble_mod):
    fake, t, ctl, app = started(ble_mod)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    fake.congested = 1
    t.poll()
    assert fake.received(1) == b"" and t.notify_errors == 1
    t.poll()
    assert fake.received(1) == b"OK\rOK\r"


def test_round_larger_than_the_ring_goes_out_whole(ble_mod):
    fake = FakeBLE()
    t = ble_mod.NusTransport(fake, max_conn=1, tx_size=64)
    ctl = Ctl(4)
    app = AppProtocol(ctl)
    t.start(app, "x")
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    t.poll()
    fake.notified.clear()
    app.stream_round()          # 12 lines, ~250 bytes; the ring holds 63: pulled line by line
    t.poll()
    assert fake.received(1) == ROUND_4S
    assert t._tx[0].dropped == 0


def test_tx_overflow_drops_whole_lines(ble_mod):
    fake = FakeBLE()
    t = ble_mod.NusTransport(fake, max_conn=1, tx_size=16)
    ring = t._tx[0]
    assert ring.put(b"C_01_04_2BC_12C_00\r", 19) is False     # a reply too long: dropped whole
    assert ring.used() == 0 and ring.dropped == 1
    assert ring.put(b"OK\r", 3) and ring.used() == 3


def test_rx_irq_only_queues(ble_mod):
    fake, t, ctl, app = started(ble_mod)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\r")
    assert not app.logged_in(0)    # nothing handled inside the IRQ
    assert fake.notified == []
    t.poll()
    assert app.logged_in(0)


def test_disconnect_all_and_stop(ble_mod):
    fake, t, ctl, app = started(ble_mod)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    fake.handler(IRQ_CONNECT, (2, 0, b""))
    t.disconnect_all()
    assert sorted(fake.disconnected) == [1, 2]
    t.stop()
    assert not fake.is_active


def rounds_received(data, cells):
    """Split a received stream into rounds (each starts at C_01) and check every round is
    whole: C lines 1..min(cells, 99), U V T E M H B once each, CS lines covering every cell."""
    lines = data.split(b"\r")   # (a round starts at a line C_01_, not at "2BC_01_" inside V)
    rounds = []
    cur = None
    for ln in lines:
        if ln.startswith(b"C_01_"):
            cur = []
            rounds.append(cur)
        if cur is not None and ln:
            cur.append(ln)
    complete = 0
    for r in rounds[:-1]:
        gen3 = min(cells, 99)
        assert [int(ln[2:4]) for ln in r[:gen3]] == list(range(1, gen3 + 1))
        assert [ln[:1] for ln in r[gen3:gen3 + 7]] == [b"U", b"V", b"T", b"E", b"M", b"H", b"B"]
        cs = r[gen3 + 7:]
        assert [int(ln[3:6]) for ln in cs] == list(range(1, cells + 1, 16))
        assert sum((len(ln) - 7) // 4 for ln in cs) == cells
        complete += 1
    return complete


@pytest.mark.parametrize("cells", [4, 99, 255])
def test_big_pack_every_round_whole_at_the_default_mtu(ble_mod, cells):
    """A 255-cell round is ~3.2 kB, larger than the 2048-byte TX ring: pulled line by line it
    still goes out whole, summary lines included, every cycle, at the default MTU (20-byte
    notifications) over a link taking one notification per 5 ms poll (200 a second)."""
    fake = FakeBLE()
    t = ble_mod.NusTransport(fake, max_conn=1)
    ctl = Ctl(cells)
    app = AppProtocol(ctl)
    t.start(app, "x")
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    t.poll()
    assert fake.received(1) == b"OK\rOK\r"
    fake.notified.clear()
    fake.room = 0
    cycles = 8
    for _ in range(cycles):
        app.stream_round()
        for _ in range(200):          # 1 s of End-role wake-ups (LOOP_POLL 5 ms)
            fake.room = 1
            t.poll()
    fake.room = None
    t.poll()
    assert all(len(d) <= 20 for c, h, d in fake.notified)
    data = fake.received(1)
    assert rounds_received(data + b"C_01_", cells) == cycles
    assert t._tx[0].dropped == 0


def test_slow_link_stretches_rounds_but_never_cuts_one(ble_mod):
    """A link that cannot carry a 255-cell round per cycle: the next round waits for the one
    going out (one round queued at most); every round that arrives is whole."""
    fake = FakeBLE()
    t = ble_mod.NusTransport(fake, max_conn=1)
    ctl = Ctl(255)
    app = AppProtocol(ctl)
    t.start(app, "x")
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    t.poll()
    fake.notified.clear()
    for _ in range(6):
        app.stream_round()
        for i in range(200):
            fake.room = 1 if i % 2 else 0   # 100 notifications a second
            t.poll()
    fake.room = None
    t.poll()
    n = rounds_received(fake.received(1) + b"C_01_", 255)
    assert 3 <= n <= 6
    assert t._tx[0].dropped == 0


def test_readers_parse_the_stream_healthy_and_during_comm_loss(ble_mod):
    """cellchain's own gen3 line parser (written from shared/spec/ble-123.md), as aiobmsble and
    the hobby client read the lines: 6-field C lines, status 0 on healthy cells (no 'problem'),
    the 'X' no-value fields (not 000) for every cell while the chain is broken."""
    from cellchain.client import parse_data_line
    from core import alarms
    from core.snapshot import CellStatus
    fake, t, ctl, app = started(ble_mod)
    for i in range(4):
        ctl.snap.cell_status[i] = CellStatus.NOT_CALIBRATED | CellStatus.BALANCING
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    t.poll()
    fake.notified.clear()

    def one_round():
        fake.notified.clear()
        app.stream_round()
        t.poll()
        return [parse_data_line(ln.decode()) for ln in fake.received(1).split(b"\r") if ln]
    healthy = one_round()
    cells = [v for tag, v in healthy if tag == "C"]
    assert len(cells) == 4 and all(c["status"] == 0 and c["v"] == 3.5 for c in cells)
    assert [v for tag, v in healthy if tag == "CS"][0]["status"] == [0x21] * 4
    ctl.snap.hold()                        # the End role keeps the complete chain each cycle
    ctl.snap.comm_ok = False
    ctl.snap.cell_count = 2                # the boards before the break
    ctl.brain.alarms = alarms.COMM_LOST
    broken = one_round()
    cells = [v for tag, v in broken if tag == "C"]
    # issue 22: both readers read an X field as 0 (0 V, -276 degC) and rebuild on a new count:
    # the same 4 cells with their last heard values, every one flagged 0x80 (a problem)
    assert len(cells) == 4
    assert all(c["v"] == 3.5 and c["t_c"] is not None and c["status"] == 0x80 for c in cells)
    u = dict(broken)["U"]
    assert u["pack_v"] == 14.0                                   # the last trusted pack voltage
    assert u["i_a"] is None and u["i1_a"] is None                 # not "+0000"


def _aiobmsble_model(lines):
    """How Home Assistant's aiobmsble reads a gen3 round (shared/spec/ble-123.md and the issue):
    fields as hex with an 'X' field read as 0, temperature = raw - 276, problem = any C line's
    status & 0x0EFC, battery temperature = the mean of the cells."""
    def num(f):
        return 0 if f.startswith("X") else int(f, 16)
    cells = []
    problem = False
    for ln in lines:
        f = ln.split("_")
        if f[0] == "C" and len(f) == 6:
            cells.append((num(f[3]) * 0.005, num(f[4]) - 276))
            problem |= bool(num(f[5]) & 0x0EFC)
    temps = [t for _, t in cells]
    return {"cells": cells, "problem": problem, "temp_c": sum(temps) / len(temps) if temps else None}


def test_aiobmsble_sees_every_fault_as_a_problem_and_no_phantom_values(ble_mod):
    """Issue 22: an open NTC read as problem: false, the cell at -276 degC and the battery at
    -35 degC; during comm loss the X fields read as 0 V / -276 degC."""
    from core import alarms
    from core.snapshot import CellStatus
    fake, t, ctl, app = started(ble_mod)
    fake.handler(IRQ_CONNECT, (1, 0, b""))
    t.poll()
    fake.central_write(1, b"PW1234!\rE!\r")
    t.poll()

    def one_round():
        fake.notified.clear()
        app.stream_round()
        t.poll()
        return [ln.decode() for ln in fake.received(1).split(b"\r") if ln]
    ctl.snap.hold()
    healthy = _aiobmsble_model(one_round())
    assert not healthy["problem"] and 20 < healthy["temp_c"] < 30
    ctl.snap.cell_status[2] = CellStatus.TEMP_SENSOR_FAULT          # an open NTC
    ntc = _aiobmsble_model(one_round())
    assert ntc["problem"] and abs(ntc["temp_c"] - healthy["temp_c"]) < 2
    assert all(t_c > -40 for _, t_c in ntc["cells"])
    ctl.snap.cell_status[2] = 0
    ctl.snap.comm_ok = False                                           # a link break
    ctl.brain.alarms = alarms.COMM_LOST
    lost = _aiobmsble_model(one_round())
    assert lost["problem"] and len(lost["cells"]) == 4
    assert all(v > 2.5 and t_c > -40 for v, t_c in lost["cells"])     # no 0 V, no -276 degC
