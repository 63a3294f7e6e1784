"""Button debounce / long press and LED patterns in simulated time (CPython and MicroPython)."""
from core import ui
from core.ui import Button, Led

import support


def _feed(btn, raw, ms, step=10):
    """Hold raw for ms in steps; returns the events seen (NONE dropped)."""
    events = []
    t = 0
    while t < ms:
        ev = btn.update(raw, step)
        if ev != ui.NONE:
            events.append(ev)
        t += step
    return events


def test_bounce_is_ignored():
    b = Button(debounce_ms=30, long_ms=5000)
    # contact bounce: alternating every 10 ms for 100 ms -> nothing
    for i in range(10):
        assert b.update(i % 2 == 0, 10) == ui.NONE
    assert not b.down
    # a single long-tick glitch is not a press either
    assert b.update(True, 1000) == ui.NONE
    assert b.update(False, 1000) == ui.NONE
    assert not b.down


def test_short_press():
    b = Button(debounce_ms=30, long_ms=5000)
    assert _feed(b, True, 300) == [ui.PRESS]
    assert b.down and 250 <= b.held_ms <= 300
    assert _feed(b, False, 100) == [ui.SHORT]
    assert not b.down and b.held_ms == 0


def test_long_press_fires_once_while_held():
    b = Button(debounce_ms=30, long_ms=5000)
    events = _feed(b, True, 4900)
    assert events == [ui.PRESS]
    events = _feed(b, True, 200)
    assert events == [ui.LONG]
    assert _feed(b, True, 3000) == []           # not repeated
    assert _feed(b, False, 100) == []           # no SHORT after a long press
    assert _feed(b, True, 6000) == [ui.PRESS, ui.LONG]   # next press works again


def test_long_press_timing_with_slow_ticks():
    # 1 s cycles: the first tick that sees the button starts the count; never early
    b = Button(debounce_ms=30, long_ms=3000)
    seen_at = None
    t = 0
    for _ in range(10):
        ev = b.update(True, 1000)
        if ev == ui.LONG and seen_at is None:
            seen_at = t
        t += 1000
    assert seen_at == 3000


def test_release_bounce_does_not_split_a_press():
    b = Button(debounce_ms=30, long_ms=5000)
    _feed(b, True, 1000)
    b.update(False, 10)
    b.update(True, 10)      # bounce back
    assert b.down
    assert _feed(b, True, 4100) == [ui.LONG]


def _trace(led, ms, step=10):
    out = []
    for _ in range(ms // step):
        out.append(1 if led.update(step) else 0)
    return out


def test_frame_pulse_flashes_once():
    led = Led()
    led.pulse()
    assert led.update(0)                    # on at once
    tr = _trace(led, 200)
    # on for FRAME_FLASH_MS: off from the sample at 50 ms onward
    assert tr == [1] * (ui.FRAME_FLASH_MS // 10 - 1) + [0] * (20 - ui.FRAME_FLASH_MS // 10 + 1)
    # one pulse per 1 s frame = the manual's 1 s flash
    ons = 0
    for _ in range(5):
        led.pulse()
        ons += 1 if led.update(0) else 0
        _trace(led, 1000)
    assert ons == 5 and not led.on


def test_steady_while_balancing_ignores_pulses():
    led = Led()
    led.steady()
    led.pulse()
    assert all(_trace(led, 500))
    led.idle()
    assert not any(_trace(led, 500))


def test_blink_periods():
    led = Led()
    led.blink(ui.RELAY_PERIOD_MS, ui.RELAY_ON_MS)
    tr = _trace(led, 20000, 10)
    # one 100 ms flash every 5 s
    assert sum(tr) == 4 * 10
    edges = [i for i in range(1, len(tr)) if tr[i] and not tr[i - 1]]
    assert [edges[i + 1] - edges[i] for i in range(len(edges) - 1)] == [500, 500, 500]
    led.blink(1000, 50)
    tr = _trace(led, 3000)
    assert sum(tr) == 3 * 5


def test_fast_flash_overrides_then_returns():
    led = Led()
    led.steady()
    led.fast()
    tr = _trace(led, ui.FAST_MS + 500, 50)
    fast_part = tr[:ui.FAST_MS // 50]
    toggles = sum(1 for i in range(1, len(fast_part)) if fast_part[i] != fast_part[i - 1])
    assert toggles >= 15       # 100 ms on / 100 ms off for 2 s
    assert all(tr[ui.FAST_MS // 50:])   # back to steady
    assert not led.fast_active


def test_wake_in_ms():
    led = Led()
    assert led.wake_in_ms() == ui.IDLE_WAKE_MS
    led.pulse(50)
    assert led.wake_in_ms() == 50
    led.update(20)
    assert led.wake_in_ms() == 30
    led.update(30)
    led.blink(1000, 50)
    assert led.wake_in_ms() == 50
    led.update(60)
    assert led.wake_in_ms() == 940
    led.fast(2000, 100)
    led.update(30)
    assert led.wake_in_ms() == 70
    b = Button()
    assert b.wake_in_ms() == ui.IDLE_WAKE_MS
    b.update(True, 10)
    assert b.wake_in_ms() == b.debounce_ms
    _feed(b, True, 100)
    assert b.wake_in_ms() == 50


def test_update_allocates_nothing():
    led = Led()
    led.blink(1000, 50)
    b = Button()

    def run():
        for i in range(40):
            b.update(i & 8, 10)
            led.update(10)
            led.wake_in_ms()
            b.wake_in_ms()
        led.pulse()
        led.fast()

    assert support.no_alloc(run)
