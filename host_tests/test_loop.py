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

    def __init__(self, clock, cycle_us=20000, poll_us=100):
        self.clock = clock
        self.cycle_us = cycle_us
        self.poll_us = poll_us
        self.dts = []
        self.ticks = 0
        self.polls = 0
        self.ok = True
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

    def wake_in_ms(self):
        return 60000

    def safe(self):
        self.safe_calls += 1


class Board:
    NAME = "fake"
    WDT_TIMEOUT_MS = 5000


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
    assert m.light_ms == 0 and clock.slept_ms > 0          # time.sleep_ms, never lightsleep


def test_watchdog_fed_after_each_cycle_that_returned():
    lp, clock, m, hw, role = _loop()
    lp.run(max_cycles=5)
    assert hw.feeds == 5
    role.fail_at = 7
    with pytest.raises(RuntimeError):
        lp.run(max_cycles=10)
    assert hw.feeds == 6                                     # not after the failing cycle


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
    assert lp.stats.sleeps >= 40


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


def test_ctrl_c_timer_stays_referenced_after_run_returns(monkeypatch):
    """Issue 19: run() dropped the Timer keep_fed made; rp2's Timer has a finaliser, so a
    garbage collection at the REPL (gc.collect(), diag.show()) cancelled it and the watchdog
    reset the board. The loop module keeps it: it outlives run() and any collection."""
    import gc
    import weakref
    clock = Clock()
    m = Machine(clock)
    made = []
    finalised = []

    class Timer:
        def __init__(self, tid, period, callback):
            self.callback = callback
            made.append(weakref.ref(self))

        def __del__(self):                    # rp2: the finaliser deinit()s the timer
            finalised.append(1)

    m.Timer = Timer
    role = Role(clock)
    hw = Hw()
    calls = []

    def cycle(dt):
        calls.append(dt)
        if len(calls) == 3:
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
    monkeypatch.setattr(loop_mod, "_repl_timer", None, raising=False)
    loop_mod.run(Board, role_mod)
    gc.collect()
    assert len(made) == 1 and made[0]() is not None and not finalised
    assert loop_mod._repl_timer is made[0]()
    before = hw.feeds
    loop_mod._repl_timer.callback(None)
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


# --- frame-clocked roles, the supervisor's reset marker, one lasterror path --------------------
class FrameRole(Role):
    """A role with cycle_due(): a frame 'passes' every 700 ms of virtual time (not the 1000 ms
    cycle_ms); the loop must run the cycle then, not on its own timer."""

    def __init__(self, clock):
        Role.__init__(self, clock, cycle_us=2000)
        self.passed_at = []
        self.cycle_at = []
        self._last_frame_us = 0

    def poll(self):
        Role.poll(self)
        if self.clock.us - self._last_frame_us >= 700000:
            self._last_frame_us = self.clock.us
            self.passed_at.append(self.clock.us)

    def cycle_due(self):
        return len(self.passed_at) > len(self.cycle_at)

    def cycle(self, dt_ms):
        self.cycle_at.append(self.clock.us)
        Role.cycle(self, dt_ms)

    def wake_in_ms(self):
        return 5


def test_frame_clocked_role_cycles_after_each_frame_not_on_a_timer():
    lp, clock, m, hw, role = _loop(FrameRole(Clock()))
    role.clock = clock
    lp.run(max_cycles=8)
    assert len(role.cycle_at) == 8
    for passed, ran in zip(role.passed_at, role.cycle_at, strict=False):
        assert 0 <= ran - passed <= 1000           # the same wake-up (< 1 ms of virtual work)
    gaps = [b - a for a, b in zip(role.cycle_at, role.cycle_at[1:], strict=False)]
    assert all(695000 <= g <= 710000 for g in gaps), gaps
    assert lp.stats.feeds == 8                     # the watchdog is fed by these cycles
    assert lp.stats.overruns == 0


def test_supervisor_reset_reads_back_as_supervisor_not_watchdog(monkeypatch, tmp_path):
    from hal import board as hal_board
    clock = Clock()
    m = Machine(clock)
    resets = []
    m.reset = lambda: resets.append(1)
    hw = Hw()
    hw.data_dir = str(tmp_path)
    loop_mod.reset_board(m, hw)
    assert resets == [1]
    m.WDT_RESET, m.PWRON_RESET = 3, 1
    m.reset_cause = lambda: 3                       # rp2: machine.reset() reads as WDT_RESET
    assert hal_board.reset_cause_name(m, str(tmp_path)) == "supervisor"
    assert hal_board.reset_cause_name(m, str(tmp_path)) == "watchdog"   # marker consumed
    hal_board.mark_intended_reset(str(tmp_path))
    m.reset_cause = lambda: 1                       # power lost before the reset: a power-up
    assert hal_board.reset_cause_name(m, str(tmp_path)) == "power"


def test_startup_error_without_hw_goes_where_diag_reads(monkeypatch, tmp_path):
    monkeypatch.setattr(loop_mod, "DATA_DIR", str(tmp_path))
    loop_mod.log_error(ValueError("no board"), None, "start-up")
    assert "no board" in loop_mod.last_error(str(tmp_path))
    hw = Hw()
    hw.data_dir = str(tmp_path)
    loop_mod.log_error(ValueError("in loop"), hw, "loop")
    assert "in loop" in loop_mod.last_error(str(tmp_path))


def test_diag_shows_a_real_roles_position_and_receive_counters(monkeypatch, tmp_path, capsys):
    """diag reads what the real Between role has: its chain position from the last good frame
    and the link port's receive / framing counters."""
    import diag
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
    from test_cell_board import Board as CellDef
    from test_cell_board import FakeHw

    from core import codec, frame, options
    from roles import between
    from roles.cell_board import CellBoard
    from sim.wire import WireRx

    hw = FakeHw(str(tmp_path), 3300)
    hw.link_rx = WireRx()
    hw.link_tx = None
    role = between.Between(hw, CellDef, CellBoard(hw, CellDef))
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 4, 1, options.word_for(0, 3400), 2, 1)   # from board 2: we are 3
    hw.link_rx.q = list(buf[:n]) + [codec.GAP, codec.FRAMING, codec.GAP]
    role.poll()
    clock = Clock()
    lp = Loop(role, Board, Hw(), Machine(clock), clock)
    monkeypatch.setattr(loop_mod, "current_role", role)
    monkeypatch.setattr(loop_mod, "current_loop", lp)
    monkeypatch.setattr(loop_mod, "current_board", CellDef)
    monkeypatch.setattr(loop_mod, "role_name", "between")
    diag.show()
    out = capsys.readouterr().out
    for needle in ("chain position: 3", "good_frames=1", "framing_errors=1", "rx_chars=%d" % (n + 3),
                   "period_ms=1000", "originated=0"):
        assert needle in out, (needle, out)


# --- light sleep (issue 12 item 6) ---------------------------------------------------------------
class SleepRole:
    """A frame-clocked-looking role that may light-sleep ``budget`` ms at every wake-up."""
    cycle_ms = 1000

    def __init__(self, budget=600):
        self.budget = budget
        self.cycles = 0

    def cycle_due(self):
        return False

    def cycle(self, dt):
        self.cycles += 1

    def wake_in_ms(self):
        return 1000

    def sleep_budget_ms(self, wake_ms):
        return self.budget - wake_ms


class RelayHw(Hw):
    def __init__(self):
        Hw.__init__(self)
        self.relay_calls = 0
        self.duty_permille = 0

    def set_charge_relay(self, on):
        self.relay_calls += 1

    set_load_relay = set_charge_relay


def _sleep_loop(sleeper, role=None, bd=None):
    clock = Clock()
    m = Machine(clock)
    hw = RelayHw()
    role = role or SleepRole()
    bd = bd or types.SimpleNamespace(WDT_TIMEOUT_MS=5000)
    return Loop(role, bd, hw, m, clock, sleeper), clock, m, hw, role


def test_the_loop_light_sleeps_the_roles_budget_through_hal_sleep():
    from hal import sleep as hal_sleep
    clock = Clock()
    m = Machine(clock)
    m.freq = lambda f=None: 125000000
    hw = RelayHw()
    hw.link_tx = types.SimpleNamespace(pending=lambda: 0)
    bd = types.SimpleNamespace(CPU="rp2040", LIGHT_SLEEP=True, SLEEP_WAKE_MS=2, WDT_TIMEOUT_MS=5000)
    sl = hal_sleep.make(bd, hw, m)
    lp = Loop(SleepRole(600), bd, hw, m, clock, sl)
    for _ in range(5):
        lp.once()
    assert m.light_ms == 5 * 598 and lp.stats.light_sleeps == 5 and sl.sleeps == 5
    assert getattr(clock, "slept_ms", 0) == 0
    # a partial PWM duty on the balance output: declined, time.sleep_ms instead
    hw.duty_permille = 500
    lp.once()
    assert m.light_ms == 5 * 598 and sl.declined == 1 and clock.slept_ms > 0
    hw.duty_permille = 1000        # full on is a steady level: sleeps again
    lp.once()
    assert lp.stats.light_sleeps == 6


def test_no_light_sleep_without_board_permission_or_with_the_radio_on():
    from hal import sleep as hal_sleep
    m = Machine(Clock())
    m.freq = lambda f=None: 125000000
    hw = RelayHw()
    assert hal_sleep.make(types.SimpleNamespace(CPU="rp2040"), hw, m) is None
    hw.ble = object()
    assert hal_sleep.make(types.SimpleNamespace(CPU="rp2040", LIGHT_SLEEP=True), hw, m) is None


class CountingSleeper:
    """A light sleeper that counts its calls; ``error``: each call raises it instead."""
    wake_ms = 2
    retry_ms = 0

    def __init__(self, error=None):
        self.calls = 0
        self.error = error

    def sleep(self, ms):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return True


def test_a_short_budget_idles_in_sleep_ms():
    sl = CountingSleeper()
    lp, clock, m, hw, role = _sleep_loop(sl, SleepRole(loop_mod.SLEEP_MIN_MS + 1))
    lp.once()
    assert sl.calls == 0 and clock.slept_ms > 0


def test_a_sleep_error_falls_back_to_sleep_ms_is_counted_and_never_touches_an_output():
    sl = CountingSleeper(OSError(5, "lightsleep failed"))
    lp, clock, m, hw, role = _sleep_loop(sl)
    for _ in range(20):
        lp.once()
    assert lp.stats.sleep_errors == loop_mod.SLEEP_ERRORS_MAX == sl.calls    # then it stops trying
    assert lp.stats.light_sleeps == 0 and clock.slept_ms >= 20 * 900
    assert hw.relay_calls == 0 and hw.safe_calls == 0


def test_light_sleep_stays_under_the_watchdog_timeout():
    class Sleeper:
        wake_ms = 2
        retry_ms = 0
        asked = []

        def sleep(self, ms):
            self.asked.append(ms)
            return True
    sl = Sleeper()
    lp, clock, m, hw, role = _sleep_loop(sl, SleepRole(5000), types.SimpleNamespace(WDT_TIMEOUT_MS=2000))
    lp.once()
    assert sl.asked == [500]


def test_step_does_one_wake_up_and_returns_its_wait_without_sleeping():
    """Loop.step(now) is the whole wake-up (the virtual pack drives it in virtual time): it
    sleeps nothing and returns the wait and the light-sleep budget; once()/run() sleep it."""
    sl = CountingSleeper()
    lp, clock, m, hw, role = _sleep_loop(sl, SleepRole(600))
    wait = lp.step(clock.ticks_ms())
    assert 0 < wait <= loop_mod.MAX_SLEEP_MS and lp.light_ms == 598
    assert sl.calls == 0 and getattr(clock, "slept_ms", 0) == 0 and m.light_ms == 0
    assert lp.stats.sleeps == 1
    assert lp.light(lp.light_ms) == -1          # what once() does with it: slept
    assert sl.calls == 1 and lp.stats.light_sleeps == 1
    # a timed role: the wait ends at its next cycle
    lp, clock, m, hw, role = _loop()
    wait = lp.step(clock.ticks_ms())
    assert role.dts == [0] and lp.light_ms == 0 and 0 < wait <= 1000


def test_diag_link_line_names_each_counter_once(monkeypatch, tmp_path, capsys):
    """Issue 19: the 'link:' line printed the port's counters and then the role's, which
    include the port's: every receive counter twice. Between, End and Begin: each name once."""
    import diag
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
    from test_cell_board import Board as CellDef
    from test_cell_board import FakeHw
    from test_end_loop import _end_rig

    from core.current import SensorPair
    from roles import begin, between
    from roles.cell_board import CellBoard
    from sim.wire import WireRx

    hw = FakeHw(str(tmp_path), 3300)
    hw.link_rx = WireRx()
    hw.link_tx = None
    roles = [("between", between.Between(hw, CellDef, CellBoard(hw, CellDef))),
             ("end", _end_rig(False)[1]),
             ("begin", begin.Begin(hw, CellDef, CellBoard(hw, CellDef), SensorPair(CellDef)))]
    for name, role in roles:
        monkeypatch.setattr(loop_mod, "current_role", role)
        monkeypatch.setattr(loop_mod, "current_loop", None)
        monkeypatch.setattr(loop_mod, "current_board", CellDef)
        monkeypatch.setattr(loop_mod, "role_name", name)
        diag.show()
        out = capsys.readouterr().out
        line = [x for x in out.splitlines() if x.startswith("link: ")][0]
        keys = [kv.split("=")[0] for kv in line[6:].split()]
        assert keys and len(keys) == len(set(keys)), (name, line)
        want = role.diag_counters()
        assert sorted(keys) == sorted(want), (name, line)
        if name != "begin":
            assert "rx_chars" in keys and "good_frames" in keys


def test_diag_on_the_gateway_shows_its_counters_and_builds_no_cell_board(monkeypatch, tmp_path, capsys):
    import diag
    role = types.SimpleNamespace(diag_counters=lambda: {"profile": "victron", "sets": 7, "stops": 0})
    monkeypatch.setattr(loop_mod, "current_role", role)
    monkeypatch.setattr(loop_mod, "current_board", types.SimpleNamespace(NAME="pico_w"))
    monkeypatch.setattr(loop_mod, "role_name", "gateway")
    monkeypatch.setattr(diag, "cell_board", lambda: (_ for _ in ()).throw(AssertionError("cell board built")))
    diag.show()
    out = capsys.readouterr().out
    assert "role: gateway" in out and "profile=victron" in out and "sets=7" in out
