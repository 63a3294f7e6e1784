"""Light sleep between frames: ``machine.lightsleep(ms)`` when nothing on the board needs its
clocks, with what the sleep disturbs put back on wake. hal/loop.py calls ``sleep(ms)`` when
the role's ``sleep_budget_ms()`` allows it; ``False`` means "not now" (the loop then idles in
time.sleep_ms), an exception is the loop's to count.

    sleeper = make(board_def, hw, machine)    # None: this board / role does not light-sleep

What MicroPython 1.2x does, and what this module does about it (docs/cell-board.md "Sleep"):

* rp2: ``lightsleep(ms)`` runs clk_sys from the 12 MHz crystal, stops the PLLs and gates
  every peripheral clock but the timer (``time.ticks_ms`` keeps counting) with interrupts off:
  the PIO state machines (the link), PWM and ADC stop, so the board is deaf until it wakes and
  only the timer wakes it. So: only between frames (the role's budget), never while the role
  still queues bytes (its ``tx_busy()``, handed over by hal/loop.py through ``watch``) or a
  transmitter still shifts a character out (``pending()``, the shift register counted), never with the balance
  output at a partial PWM duty (the output would freeze high or low for the sleep; 0 and full
  duty are steady levels). On wake the clocks come back at the frequency they had before (1.22
  reset it to the default: checked, ``machine.freq`` set again), so the PIO clock dividers,
  computed for that frequency at start-up, stay right. The watchdog keeps counting in light
  sleep: the loop keeps every sleep well under its timeout.
* esp32: ``lightsleep(ms)`` clock-gates the UART (characters arriving are lost); MicroPython has
  no UART wake source, but ``esp32.wake_on_ext0`` (an RTC GPIO, at a level) works in light
  sleep: with ``LIGHT_SLEEP_WAKE_ON_LINK`` the start bit on LINK_IN wakes the board, so a frame
  that comes early loses its first characters (one frame), not the whole frame. The wake-up
  leaves the pin on the RTC mux: ``Pin.init`` gives it back to the digital side (and the UART
  that reads it through the GPIO matrix) after every sleep. ESP32-C3: no ext0 (timer only).
* a board with its radio on (BLE: End on pico_w / ESP32) does not light-sleep at all (the
  connection would drop; cyw43 refuses a light sleep with events pending).

Not verified on hardware: all of it (the virtual pack models it, docs/virtual-pack.md).
Per call no allocation (attribute reads, small ints).
"""
from micropython import const

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any  # under TYPE_CHECKING: never imported on a board

DEFAULT_WAKE_MS = const(2)   # light sleep -> running again (estimate: crystal kept running,
#                              PLL relock and clock set-up on rp2; ESP32 light-sleep exit)
_FULL = const(1000)
TX_RETRY_MS = const(2)       # declined: a character still going out - ask again this soon
_NO_RETRY = const(1000)      # declined for a while (balancing at a PWM duty)


class LightSleep:
    """machine.lightsleep for one board; ``wake_ms``: what a wake-up costs (board definition
    SLEEP_WAKE_MS). ``sleeps`` / ``declined``: counters for diag; ``retry_ms``: after a
    decline, how soon asking again may succeed (the loop idles that long at most)."""

    def __init__(self, board_def, hw, machine, esp32=None):
        self.hw = hw
        self._lightsleep = machine.lightsleep
        self.wake_ms = getattr(board_def, "SLEEP_WAKE_MS", DEFAULT_WAKE_MS)
        self._txs = tuple(t for t in (getattr(hw, "link_tx", None), getattr(hw, "extout_tx", None))
                          if t is not None and hasattr(t, "pending"))
        self._freq: "Any" = None
        self._set_freq: "Any" = None
        if board_def.CPU == "rp2040":
            self._set_freq = machine.freq
            self._freq = machine.freq()
        self._pin: "Any" = None
        self._pin_in = 0
        if getattr(board_def, "LIGHT_SLEEP_WAKE_ON_LINK", False) and getattr(hw, "link_rx", None) is not None:
            if esp32 is None:
                esp32 = __import__("esp32")
            from hal.link import rx_invert
            pin = machine.Pin(board_def.LINK_IN_PIN)
            # the start bit's level at the pin (ordinary UART polarity after the opto: low)
            esp32.wake_on_ext0(pin=pin, level=1 if rx_invert(board_def) else 0)
            self._pin = pin
            self._pin_in = machine.Pin.IN
        self.sleeps = 0
        self.declined = 0
        self.retry_ms = 0
        self._tx_busy: "Any" = None

    def watch(self, tx_busy):
        """``tx_busy()`` (the role's, bound once; None: none): True while bytes of the role's
        software queues (Originator, forwarder, extended output) are still to reach a FIFO."""
        self._tx_busy = tx_busy

    def ready(self):
        """Nothing that a light sleep would stop is running: no byte still queued in software
        or shifting out (the transmitters' ``pending()`` counts the shift register), the
        balance output at a steady level (off or full on)."""
        d = getattr(self.hw, "duty_permille", 0)
        if 0 < d < _FULL:
            self.retry_ms = _NO_RETRY
            return False
        b = self._tx_busy
        if b is not None and b():
            self.retry_ms = TX_RETRY_MS
            return False
        for t in self._txs:
            if t.pending():
                self.retry_ms = TX_RETRY_MS
                return False
        return True

    def sleep(self, ms):
        """Light-sleep ``ms`` and restore the clocks and the wake pin; False: declined (not
        ready), nothing done."""
        if not self.ready():
            self.declined += 1
            return False
        self._lightsleep(ms)
        f = self._freq
        if f is not None and self._set_freq() != f:
            self._set_freq(f)
        p = self._pin
        if p is not None:
            p.init(self._pin_in)
        self.sleeps += 1
        return True


def make(board_def, hw, machine, esp32=None):
    """The board's LightSleep, or None: the definition does not allow it (LIGHT_SLEEP), the
    port has no machine.lightsleep, or the radio is on (hw.ble)."""
    if not getattr(board_def, "LIGHT_SLEEP", False):
        return None
    if getattr(hw, "ble", None) is not None:
        return None
    if not hasattr(machine, "lightsleep"):
        return None
    return LightSleep(board_def, hw, machine, esp32)
