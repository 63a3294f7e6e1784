"""hal/loop.py driven by a virtual clock and a fake machine module (CPython)."""
import os
import sys
import types

import pytest

from hal import loop as loop_mod
from hal.loop import Loop


class Clock:
    """time-module stand-in: virtual ms/us that wrap like an RP2040's (2**30)."""
    PERIOD = 1 << 30

    def __init__(self, start_us=0):
        self.us = start_us

    def ticks_us(self):
        return self.us % self.PERIOD

    def ticks_ms(self):
        return (self.us // 1000) % self.PERIOD

    def ticks_diff(self, a, b):
        d = (a - b) % self.PERIOD
        return d - self.PERIOD if d >= self.PERIOD // 2 else d

    def ticks_add(self, t, d):
        return (t + d) % self.PERIOD

    def sleep_ms(self, ms):
        self.slept_ms = getattr(self, "slept_ms", 0) + ms
        self.us += ms * 1000

    def work(self, us):
        self.us += us


class Machine:
    def __init__(self, clock):
        self.clock = clock
        self.light_ms = 0
        self.resets = 0
        self.wdt = None

    def lightsleep(self, ms):
        self.light_ms += ms
        self.clock.us += ms * 1000

    def WDT(self, timeout):
        self.wdt = types.SimpleNamespace(timeout=timeout, feeds=0)
        self.wdt.feed = lambda: setattr(self.wdt, "feeds", self.wdt.feeds + 1)
        return self.wdt


DATA_ROOT = [None]      # the running test's tmp_path (fixture below): Hw data folders go there


@pytest.fixture(autouse=True)
def _data_root(tmp_path):
    DATA_ROOT[0] = str(tmp_path)
    yield
    DATA_ROOT[0] = None


class Hw:
    def __init__(self):
        import tempfile
        self.feeds = 0
        self.safe_calls = 0
        self.data_dir = tempfile.mkdtemp(prefix="loop-", dir=DATA_ROOT[0])

    def feed_watchdog(self):
        self.feeds += 1

    def safe(self):
        self.safe_calls += 1


class Role:
    cycle_ms = 1000
    poll_ms = 1000     # most tests: one poll per cycle (the default is DEFAULT_POLL_MS)

    def __init__(self, clock, cycle_us=20000, poll_us=100):
        self.clock = clock
        self.cycle_us = cycle_us
        self.poll_us = poll_us
        self.dts = []
        self.ticks = 0
        self.polls = 0
        self.ok = True
        self.sleep_ok = True
        self.fail_at = None
        self.safe_calls = 0

    def poll(self):
        self.polls += 1
        self.clock.work(self.poll_us)

    def tick(self, dt_ms):
        self.ticks += 1

    def cycle(self, dt_ms):
        self.dts.append(dt_ms)
        if self.fail_at is not None and len(self.dts) >= self.fail_at:
            raise RuntimeError("boom")
        self.clock.work(self.cycle_us)

    def healthy(self):
        return self.ok

    def wake_in_ms(self):
        return 60000

    def safe(self):
        self.safe_calls += 1


class Board:
    NAME = "fake"
    WDT_TIMEOUT_MS = 5000
    LIGHTSLEEP = True


def _loop(role=None, board=Board, start_us=0):
    clock = Clock(start_us)
    m = Machine(clock)
    hw = Hw()
    role = role or Role(clock)
    role.clock = clock
    return Loop(role, board, hw, m, clock), clock, m, hw, role


def test_cycles_on_schedule_and_dt_from_ticks():
    lp, clock, m, hw, role = _loop()
    lp.run(max_cycles=20)
    assert role.dts[0] == 0
    assert all(d == 1000 for d in role.dts[2:]), role.dts
    assert hw.feeds == 20 and lp.stats.overruns == 0


def test_tick_wrap_does_not_disturb_the_schedule():
    # start 5 s before the 2**30 us wrap of ticks_us and ~1.07e6 s... of ticks_ms: both wrap safely
    lp, clock, m, hw, role = _loop(start_us=(1 << 30) - 5000000)
    lp.run(max_cycles=15)
    assert all(d == 1000 for d in role.dts[2:]), role.dts
    assert 0 < lp.stats.awake_permille < 100


def test_awake_fraction_measured():
    lp, clock, m, hw, role = _loop()
    lp.run(max_cycles=10)
    # 20 ms cycle + 2 polls of 0.1 ms per 1 s
    assert 19 <= lp.stats.awake_permille <= 22
    assert lp.stats.awake_avg_permille < 1000
    assert m.light_ms > 0 and lp.stats.lightsleeps > 0


def test_no_lightsleep_when_role_or_board_forbids():
    role_clock = Clock()
    role = Role(role_clock)
    role.sleep_ok = False
    lp, clock, m, hw, role = _loop(role)
    lp.run(max_cycles=5)
    assert m.light_ms == 0 and clock.slept_ms > 0

    class NoLight(Board):
        LIGHTSLEEP = False

    lp, clock, m, hw, role = _loop(board=NoLight)
    lp.run(max_cycles=5)
    assert m.light_ms == 0 and lp.stats.sleeps > 0


def test_watchdog_fed_only_when_healthy():
    lp, clock, m, hw, role = _loop()
    lp.run(max_cycles=5)
    assert hw.feeds == 5
    role.ok = False
    lp.run(max_cycles=10)
    assert hw.feeds == 5 and lp.stats.unhealthy == 5


def test_own_wdt_when_hw_has_none():
    lp, clock, m, hw, role = _loop()
    lp._feed = None
    lp.run(max_cycles=3)
    assert m.wdt.timeout == 5000 and m.wdt.feeds == 3


def test_overrun_restarts_schedule():
    lp, clock, m, hw, role = _loop()
    lp.run(max_cycles=3)
    role.cycle_us = 2500000      # a 2.5 s cycle (hung I/O, say)
    lp.run(max_cycles=4)
    role.cycle_us = 20000
    lp.run(max_cycles=8)
    assert lp.stats.overruns >= 1
    assert role.dts[-1] == 1000 and lp.stats.max_cycle_us >= 2500000


def test_wakes_for_led_timing():
    lp, clock, m, hw, role = _loop()
    role.wake_in_ms = lambda: 50
    lp._wake_in = role.wake_in_ms
    lp.run(max_cycles=3)
    assert role.ticks >= 30 and role.polls == role.ticks


def test_default_poll_interval_and_cell_wake_hint():
    clock = Clock()

    class Cell:
        def __init__(self):
            self.hint = 60000

        def wake_in_ms(self):
            return self.hint

    class LinkRole:
        cycle_ms = 1000

        def __init__(self):
            self.polls = 0
            self.cell = Cell()

        def poll(self):
            self.polls += 1

        def cycle(self, dt_ms):
            clock.work(1000)

    role = LinkRole()
    lp = Loop(role, Board, Hw(), Machine(clock), clock)
    assert lp.poll_ms == loop_mod.DEFAULT_POLL_MS
    lp.run(max_cycles=3)
    assert role.polls >= 2000 // loop_mod.DEFAULT_POLL_MS
    # without a poll() the loop sleeps to the next cycle unless the CellBoard wants a wake-up
    del LinkRole.poll
    role = LinkRole()
    role.cell.hint = 50
    lp = Loop(role, Board, Hw(), Machine(clock), clock)
    assert lp.poll_ms == loop_mod.MAX_SLEEP_MS
    lp.run(max_cycles=3)
    assert lp.stats.sleeps + lp.stats.lightsleeps >= 40


def test_supervisor_safe_first_then_log_then_reset(monkeypatch, tmp_path):
    clock = Clock()
    m = Machine(clock)
    events = []
    m.reset = lambda: events.append("reset")
    role = Role(clock)
    role.fail_at = 3
    role.safe = lambda: events.append("safe")
    hw = Hw()
    hw.data_dir = str(tmp_path)
    hw.safe = lambda: events.append("hw.safe")
    fake_board_mod = types.ModuleType("hal.board")
    fake_board_mod.make_hw = lambda bd, name: hw
    role_mod = types.ModuleType("roles.between")
    role_mod.make = lambda h, bd: role
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.setitem(sys.modules, "time", clock)
    import hal
    monkeypatch.setattr(hal, "board", fake_board_mod, raising=False)
    monkeypatch.setitem(sys.modules, "hal.board", fake_board_mod)
    loop_mod.run(Board, role_mod)
    assert events == ["safe", "hw.safe", "reset"]
    assert loop_mod.role_name == "between" and loop_mod.current_role is role
    text = loop_mod.last_error(str(tmp_path))
    assert "boom" in text and "between loop" in text
    assert clock.slept_ms >= loop_mod.RESET_DELAY_MS


def test_ctrl_c_keeps_watchdog_fed(monkeypatch):
    clock = Clock()
    m = Machine(clock)
    timers = []
    m.Timer = lambda tid, period, callback: timers.append((tid, period, callback)) or "timer"
    role = Role(clock)
    hw = Hw()
    calls = []

    def cycle(dt):
        calls.append(dt)
        if len(calls) == 4:
            raise KeyboardInterrupt

    role.cycle = cycle
    fake_board_mod = types.ModuleType("hal.board")
    fake_board_mod.make_hw = lambda bd, name: hw
    role_mod = types.ModuleType("roles.end")
    role_mod.make = lambda h, bd: role
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.setitem(sys.modules, "time", clock)
    import hal
    monkeypatch.setattr(hal, "board", fake_board_mod, raising=False)
    monkeypatch.setitem(sys.modules, "hal.board", fake_board_mod)
    loop_mod.run(Board, role_mod)
    assert role.safe_calls == 1 and hw.safe_calls == 1
    assert len(timers) == 1 and timers[0][1] == 1250
    before = hw.feeds
    timers[0][2](None)
    assert hw.feeds == before + 1


def test_startup_failure_resets_after_delay(monkeypatch):
    clock = Clock()
    m = Machine(clock)
    events = []
    m.reset = lambda: events.append("reset")
    hw = Hw()
    fake_board_mod = types.ModuleType("hal.board")
    fake_board_mod.make_hw = lambda bd, name: hw

    def bad_make(h, bd):
        raise ValueError("bad board definition")

    role_mod = types.ModuleType("roles.begin")
    role_mod.make = bad_make
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.setitem(sys.modules, "time", clock)
    import hal
    monkeypatch.setattr(hal, "board", fake_board_mod, raising=False)
    monkeypatch.setitem(sys.modules, "hal.board", fake_board_mod)
    loop_mod.run(Board, role_mod)
    assert events == ["reset"] and hw.safe_calls == 1
    assert clock.slept_ms == loop_mod.START_FAIL_DELAY_MS


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


# --- diag.py reads the registry the loop fills -------------------------------------------------
def _registry(monkeypatch, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
    from test_cell_board import Board as CellDef
    from test_cell_board import FakeHw

    from roles.cell_board import CellBoard

    hw = FakeHw(str(tmp_path), 3300)
    cell = CellBoard(hw, CellDef)
    link = types.SimpleNamespace(good_frames=12, bad_frames=1, timeouts=2)
    role = types.SimpleNamespace(cell=cell, link=link, position=3, cycle_ms=1000)
    clock = Clock()
    lp = Loop(role, Board, Hw(), Machine(clock), clock)
    monkeypatch.setattr(loop_mod, "current_role", role)
    monkeypatch.setattr(loop_mod, "current_loop", lp)
    monkeypatch.setattr(loop_mod, "current_board", CellDef)
    monkeypatch.setattr(loop_mod, "role_name", "between")
    return hw, cell, role


def test_diag_show_lists_everything(monkeypatch, tmp_path, capsys):
    import diag
    hw, cell, role = _registry(monkeypatch, tmp_path)
    diag.show()
    out = capsys.readouterr().out
    for needle in ("role: between", "board: fake", "chain position: 3", "cell: 33", "NOT calibrated",
                   "temperature: 25.0 degC ok (NTC)", "balancing: duty 0", "good_frames=12",
                   "bad_frames=1", "timeouts=2", "reset cause: power", "last error: none", "loop: 0 cycles",
                   "not-calibrated"):
        assert needle in out, (needle, out)


def test_diag_calibration_calls(monkeypatch, tmp_path, capsys):
    import diag
    hw, cell, role = _registry(monkeypatch, tmp_path)
    hw.cell_mv = 2500
    assert "point 1" in diag.calibrate_cell(2500)
    hw.cell_mv = 2600
    assert diag.calibrate_cell(2600).startswith("refused: ")
    hw.cell_mv = 4000
    assert "calibrated" in diag.calibrate_cell(4000)
    assert os.path.exists(os.path.join(str(tmp_path), "calibration.json"))
    text = "\n".join(diag.lines())
    assert "cell: 4000 mV ok" in text and " calibrated gain" in text
    diag.calibrate_cell_clear()
    assert "NOT calibrated" in "\n".join(diag.lines())
    assert diag.zero_current() is False
