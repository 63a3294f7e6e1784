"""Button debounce and long press; LED patterns. Clock-free: every call takes elapsed ms.

Button (``Button.update(raw_down, dt_ms)`` -> event):
  a change of the raw input is accepted once it has been seen on two calls at least
  ``debounce_ms`` apart (a single bounce, even on a slow tick, is ignored). Events: PRESS (accepted
  press), SHORT (released before the long-press time), LONG (once, while still held, when the hold
  reaches ``long_ms``: the caller acts then and shows fast flash, which is what the manual's
  "hold until the LED flashes fast" means). Hold time counts from the first call that saw the
  button down, so a slow tick makes a long press at most one tick late, never early.

LED (``Led.update(dt_ms)`` -> on/off):
  base pattern OFF, _STEADY (balancing) or _BLINK(period, on time: 1 s flash, the End board's 5 s
  relay-status flash); ``pulse()`` adds one short flash (a good link frame) on top of OFF/_BLINK;
  ``fast()`` overrides everything with fast flashing for a while (a confirmation).
  ``wake_in_ms()`` says when the output next changes, so the loop can sleep until then.
No allocation in update/wake_in_ms.
"""
from micropython import const

NONE = const(0)
PRESS = const(1)
SHORT = const(2)
LONG = const(3)

_DEBOUNCE_MS = const(30)
LONG_PRESS_MS = const(5000)    # End board: 5 s resets the BLE password (manual)
CALIBRATE_PRESS_MS = const(3000)  # Begin board: hold until fast flash -> zero the current sensors

OFF = const(0)
_STEADY = const(1)
_BLINK = const(2)

FRAME_FLASH_MS = const(50)     # on-time of the flash for one good frame (1 s frames -> 1 s flash)
_FAST_HALF_MS = const(100)      # fast flash: 100 ms on, 100 ms off
FAST_MS = const(2000)          # fast flash lasts 2 s
RELAY_PERIOD_MS = const(5000)  # End board relay LEDs: one flash every 5 s while the relay is on
RELAY_ON_MS = const(100)
IDLE_WAKE_MS = const(60000)    # "nothing will change" for wake_in_ms


class Button:
    def __init__(self, debounce_ms=_DEBOUNCE_MS, long_ms=LONG_PRESS_MS):
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.reset()

    def reset(self):
        self.down = False        # debounced state
        self.held_ms = 0         # how long the debounced press has lasted (saturates at 10 min)
        self.long_fired = False
        self._seen = False       # raw differs from the debounced state since the last call
        self._pending_ms = 0

    def update(self, raw_down, dt_ms):
        raw_down = bool(raw_down)
        if raw_down != self.down:
            if self._seen:
                self._pending_ms += dt_ms
            else:
                self._seen = True
                self._pending_ms = 0
            if self._seen and self._pending_ms >= self.debounce_ms:
                self._seen = False
                self.down = raw_down
                if raw_down:
                    self.held_ms = self._pending_ms
                    self.long_fired = False
                    if self.held_ms >= self.long_ms:
                        self.long_fired = True
                        return LONG
                    return PRESS
                was_long = self.long_fired
                self.long_fired = False
                self.held_ms = 0
                return NONE if was_long else SHORT
            return NONE
        self._seen = False
        self._pending_ms = 0
        if self.down:
            if self.held_ms < 600000:
                self.held_ms += dt_ms
            if not self.long_fired and self.held_ms >= self.long_ms:
                self.long_fired = True
                return LONG
        return NONE

    def wake_in_ms(self):
        """How soon the button wants the next update (short while something is going on)."""
        if self._seen:
            return self.debounce_ms
        if self.down and not self.long_fired:
            return 50
        return IDLE_WAKE_MS


class Led:
    def __init__(self):
        self.mode = OFF
        self.period_ms = 1000
        self.blink_on_ms = FRAME_FLASH_MS
        self.phase_ms = 0
        self.pulse_left_ms = 0
        self.fast_left_ms = 0
        self.fast_half_ms = _FAST_HALF_MS
        self.fast_elapsed_ms = 0
        self.on = False

    def off(self):
        self.mode = OFF
        self.pulse_left_ms = 0
        self.fast_left_ms = 0

    def steady(self):
        self.mode = _STEADY

    def idle(self):
        """Base pattern off (pulses and fast flash still show)."""
        self.mode = OFF

    def blink(self, period_ms=1000, on_ms=FRAME_FLASH_MS):
        """Periodic flash; restarting the same pattern keeps its phase."""
        if self.mode != _BLINK or self.period_ms != period_ms or self.blink_on_ms != on_ms:
            self.phase_ms = 0
        self.mode = _BLINK
        self.period_ms = period_ms if period_ms > 0 else 1000
        self.blink_on_ms = on_ms

    def pulse(self, on_ms=FRAME_FLASH_MS):
        self.pulse_left_ms = on_ms

    def fast(self, duration_ms=FAST_MS, half_ms=_FAST_HALF_MS):
        self.fast_left_ms = duration_ms
        self.fast_half_ms = half_ms if half_ms > 0 else _FAST_HALF_MS
        self.fast_elapsed_ms = 0

    @property
    def fast_active(self):
        return self.fast_left_ms > 0

    def _output(self):
        if self.fast_left_ms > 0:
            return (self.fast_elapsed_ms // self.fast_half_ms) % 2 == 0
        if self.mode == _STEADY:
            return True
        if self.pulse_left_ms > 0:
            return True
        if self.mode == _BLINK:
            return self.phase_ms < self.blink_on_ms
        return False

    def update(self, dt_ms):
        """Advance by dt_ms; returns (and stores in ``on``) the LED state."""
        if self.fast_left_ms > 0:
            self.fast_left_ms -= dt_ms
            self.fast_elapsed_ms += dt_ms
            if self.fast_left_ms < 0:
                self.fast_left_ms = 0
        if self.pulse_left_ms > 0:
            self.pulse_left_ms -= dt_ms
            if self.pulse_left_ms < 0:
                self.pulse_left_ms = 0
        if self.mode == _BLINK:
            self.phase_ms = (self.phase_ms + dt_ms) % self.period_ms
        self.on = self._output()
        return self.on

    def wake_in_ms(self):
        """ms until the output can next change without an outside event."""
        if self.fast_left_ms > 0:
            half = self.fast_half_ms
            to_toggle = half - self.fast_elapsed_ms % half
            return to_toggle if to_toggle < self.fast_left_ms else self.fast_left_ms
        if self.mode == _STEADY:
            return IDLE_WAKE_MS
        best = IDLE_WAKE_MS
        if self.pulse_left_ms > 0:
            best = self.pulse_left_ms
        if self.mode == _BLINK:
            if self.phase_ms < self.blink_on_ms:
                edge = self.blink_on_ms - self.phase_ms
            else:
                edge = self.period_ms - self.phase_ms
            if edge < best:
                best = edge
        return best
