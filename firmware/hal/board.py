"""Build the ``hw`` object of docs/architecture.md from a board definition (board_defs/*.py).

    hw = make_hw(board_def, "between")

Everything comes from the definition's constants: no ``if board == ...``. The ``machine``
module, the link module (hal.link) and the BLE module (hal.ble) are imported lazily inside
make_hw, or injected (tests, simulator); nothing here touches hardware at import time.
Every hw method used per cycle is allocation-free (integer arithmetic on small ints).
"""
from micropython import const

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any  # under TYPE_CHECKING: never imported on a board

DATA_DIR = "/data"                  # settings, calibration, state: flash.sh never overwrites it
LASTERROR_FILE = "/lasterror.txt"   # in DATA_DIR: the supervisor's last traceback (diag shows it)
RESET_MARKER_FILE = "/reset_intended"   # in DATA_DIR: the supervisor chose the next reset
READ_ERROR_UV = const(-1000000)   # an ADC input that could not be read (see hal/ads1115.py)
_PERMILLE = const(1000)
_U16_MAX = const(65535)
_SMALL_INT_MAX = const(0x3FFFFFFF)   # 2**30 - 1: beyond this, ints allocate on the boards


class BoardError(Exception):
    """The board definition and the requested role do not fit, or a hal module is missing."""


def u16_scale(vref_uv):
    """(mul, shift) with uv = (u16 * mul) >> shift and u16 * mul < 2**30 (no big ints on the
    boards), for a read_u16() reading whose full scale 65535 is ``vref_uv``."""
    shift = 0
    while _U16_MAX * ((vref_uv << (shift + 1)) // _U16_MAX + 1) <= _SMALL_INT_MAX:
        shift += 1
    mul = ((vref_uv << shift) + _U16_MAX // 2) // _U16_MAX
    return mul, shift


class Analog:
    """One ADC input returning microvolts at the pin. ``kind`` is the board definition's
    ADC_READ: "read_u16" (scaled with ADC_VREF_UV) or "read_uv" (factory-calibrated)."""

    def __init__(self, adc, kind, vref_uv=None):
        self.adc = adc
        self._read = getattr(adc, kind)   # bound method chosen by data, stored once
        if kind == "read_u16":
            self._mul, self._shift = u16_scale(vref_uv)
        else:
            self._mul, self._shift = 1, 0

    def uv(self):
        return (self._read() * self._mul) >> self._shift


class _ChipTemp:
    """Die temperature in 0.1 degC. RP2040: ADC channel 4 (27 degC at 0.706 V, -1.721 mV/K).
    ESP32-C3/S3: esp32.mcu_temperature() in degC; ESP32: esp32.raw_temperature() in degF."""

    def __init__(self, analog=None, read_c=None, read_f=None):
        self._analog = analog
        self._read_c = read_c
        self._read_f = read_f

    def dc(self):
        if self._analog is not None:
            return 270 - ((self._analog.uv() - 706000) * 10) // 1721
        if self._read_c is not None:
            return self._read_c() * 10
        if self._read_f is not None:
            return ((self._read_f() - 32) * 50) // 9
        return 0


class _Probe:
    """The cell input's self-test load (core/probe.py): either the ADC pad's own pull-down
    (``CELL_PROBE_PIN`` None: RP2040, ESP32-C3) or a test resistor from the ADC node to a GPIO
    driven low (ESP32 GPIO36-39 have no pulls). Positional ``init`` arguments only: no
    keyword map, no allocation per call."""

    def __init__(self, Pin, adc_pin, test_pin):
        self._Pin = Pin
        if test_pin is None:
            self._pin = Pin(adc_pin)
            self._pad = True
        else:
            self._pin = Pin(test_pin, Pin.IN)
            self._pad = False

    def set(self, on):
        Pin = self._Pin
        p = self._pin
        if self._pad:
            p.init(None, Pin.PULL_DOWN if on else None)
        elif on:
            p.value(0)
            p.init(Pin.OUT)
        else:
            p.init(Pin.IN)


class Hw:
    """The board's hardware for one role. Attributes a role does not need are absent."""

    def __init__(self, board_def, role, data_dir):
        self.board_def = board_def
        self.role = role
        self.data_dir = data_dir
        self._reset_cause = "unknown"
        # filled in by make_hw (only what the role needs; the rest stays None)
        self._wdt: "Any" = None
        self._wdt_factory: "Any" = None
        self._cell: "Any" = None
        self._ntc: "Any" = None
        self._chip: "Any" = None
        self._balance: "Any" = None
        self._led: "Any" = None
        self._button: "Any" = None
        self._button_down_level = 0
        self._switches: "Any" = ()
        self._switch_invert = 0
        self._current: "Any" = ()
        self._relay_on = 1
        self._relay_off = 0
        self._charge_relay: "Any" = None
        self._load_relay: "Any" = None
        self._charge_led: "Any" = None
        self._load_led: "Any" = None
        self.ads1115: "Any" = None
        self.link_tx: "Any" = None
        self.link_rx: "Any" = None
        self.extout_tx: "Any" = None
        self.ble: "Any" = None
        self.duty_permille = 0      # the balance output's duty (hal.sleep: steady or PWM)
        self._probe: "Any" = None
        self.has_cell_probe = False
        self._temp_probe: "Any" = None
        self.has_temp_probe = False

    # -- cell voltage and temperature --------------------------------------------------------
    def read_cell_uv(self):
        return self._cell.uv()

    def set_cell_probe(self, on):
        """Load the cell ADC node for the input self-test (core/probe.py), or release it."""
        p = self._probe
        if p is not None:
            p.set(on)

    def set_temp_probe(self, on):
        """Load the NTC ADC node for its self-test, or release it."""
        p = self._temp_probe
        if p is not None:
            p.set(on)

    def read_temp_uv(self):
        ntc = self._ntc
        if ntc is None:
            return None
        return ntc.uv()

    def read_chip_temp_dc(self):
        return self._chip.dc()

    # -- outputs --------------------------------------------------------------------------------
    def set_balance_duty(self, permille):
        if permille <= 0:
            self._balance.duty_u16(0)
            self.duty_permille = 0
        elif permille >= _PERMILLE:
            self._balance.duty_u16(_U16_MAX)
            self.duty_permille = _PERMILLE
        else:
            self._balance.duty_u16((permille * _U16_MAX) // _PERMILLE)
            self.duty_permille = permille

    def set_led(self, on):
        self._led.value(1 if on else 0)

    def button_down(self):
        return self._button.value() == self._button_down_level

    # -- Begin ----------------------------------------------------------------------------------
    def read_switches(self):
        """Switch word: bit 7 = switch 1 ... bit 0 = switch 8, 1 = ON."""
        word = 0
        inv = self._switch_invert
        for p in self._switches:
            word = (word << 1) | (p.value() ^ inv)
        return word

    def read_current_uv(self, sensor, high_range):
        """Microvolts at the input of sensor 1 or 2, low or high range channel
        (READ_ERROR_UV when the ADC could not be read)."""
        pair = self._current[sensor - 1]
        return pair[1].uv() if high_range else pair[0].uv()

    # -- End ------------------------------------------------------------------------------------
    def set_charge_relay(self, on):
        self._charge_relay.value(self._relay_on if on else self._relay_off)

    def set_load_relay(self, on):
        self._load_relay.value(self._relay_on if on else self._relay_off)

    def set_charge_led(self, on):
        self._charge_led.value(1 if on else 0)

    def set_load_led(self, on):
        self._load_led.value(1 if on else 0)

    # -- system ---------------------------------------------------------------------------------
    def feed_watchdog(self):
        """Feed machine.WDT; the watchdog starts at the first call (so a slow start-up cannot
        trip it) and cannot be stopped afterwards."""
        wdt = self._wdt
        if wdt is None:
            wdt = self._wdt = self._wdt_factory()
        wdt.feed()

    def reset_cause(self):
        return self._reset_cause

    def safe(self):
        """Every output to its safe level: balancing off, relays off (not allowed), LEDs off."""
        self.set_balance_duty(0)
        self.set_led(False)
        if self._charge_relay is not None:
            self.set_charge_relay(False)
            self.set_load_relay(False)
            self.set_charge_led(False)
            self.set_load_led(False)


def missing_module(name, why):
    """The BoardError for a hal module that another part of the firmware has to provide."""
    return BoardError("hal.%s is needed but cannot be imported (%s): is hal/%s.py in the image?"
                      % (name, why, name))


def hal_module(name):
    """Import hal.<name> by name or raise a clear BoardError (tools and diagnostics; make_hw
    imports statically so tools/build_images.py sees what an image needs)."""
    try:
        return __import__("hal." + name, None, None, (name,))
    except ImportError as e:
        why = str(e)
    raise missing_module(name, why)  # outside the handler: MicroPython warns on chaining


def _link_module():
    try:
        from hal import link
        return link
    except ImportError as e:
        why = str(e)
    raise missing_module("link", why)


def _ble_module():
    try:
        from hal import ble  # image: end
        return ble
    except ImportError as e:
        why = str(e)
    raise missing_module("ble", why)


_CAUSES = (("PWRON_RESET", "power"), ("HARD_RESET", "hard"), ("WDT_RESET", "watchdog"),
           ("DEEPSLEEP_RESET", "deepsleep"), ("SOFT_RESET", "soft"), ("BROWNOUT_RESET", "brownout"))


def mark_intended_reset(data_dir=DATA_DIR):
    """Leave the marker the next start reads: the reset about to happen is the supervisor's own
    choice (on rp2 machine.reset() reads back as a watchdog reset). Never raises."""
    try:
        with open(data_dir + RESET_MARKER_FILE, "w") as f:
            f.write("1")
    except OSError:
        pass


def _take_marker(data_dir):
    import os
    try:
        os.remove(data_dir + RESET_MARKER_FILE)
        return True
    except OSError:
        return False


def reset_cause_name(machine, data_dir=None):
    """machine.reset_cause() as a short string: power, hard, watchdog, deepsleep, soft, ...;
    "supervisor" when the reset was machine.reset() after mark_intended_reset (the marker in
    ``data_dir`` is consumed, so only the reset right after it counts)."""
    intended = _take_marker(data_dir) if data_dir is not None else False
    try:
        code = machine.reset_cause()
    except (AttributeError, OSError):
        return "supervisor" if intended else "unknown"
    if intended and code != getattr(machine, "PWRON_RESET", None):
        return "supervisor"
    for attr, name in _CAUSES:
        if getattr(machine, attr, None) == code:
            return name
    return "unknown"


def ensure_dir(path):
    """Create ``path`` (and its parents) if missing; a file in the way is an error."""
    import os
    parts = [p for p in path.split("/") if p]
    cur = "" if path.startswith("/") else "."
    for p in parts:
        cur = cur + "/" + p
        try:
            mode = os.stat(cur)[0]
        except OSError:
            os.mkdir(cur)
            continue
        if not mode & 0x4000:
            raise BoardError("%s exists and is not a folder" % cur)


def make_hw(board_def, role, data_dir=DATA_DIR, machine=None, link=None, ble=None, esp32=None,
            sleep_us=None):
    """Build the hw object for ``role`` ("begin", "between", "end", "gateway") on this board.

    machine / link / ble / esp32 / sleep_us are injected by tests and the simulator; on a board
    they are imported here (hal.link and hal.ble lazily, with a clear error if missing)."""
    if role not in board_def.ROLES:
        raise BoardError("board %s cannot be the %s board (roles: %s)"
                         % (board_def.NAME, role, ", ".join(board_def.ROLES)))
    if machine is None:
        import machine as _machine
        machine = _machine
    if role == "gateway":
        from hal import gateway_hw  # image: gateway
        return gateway_hw.make(board_def, data_dir, machine)
    Pin = machine.Pin
    bd = board_def
    hw = Hw(bd, role, data_dir)
    ensure_dir(data_dir)
    hw._reset_cause = reset_cause_name(machine, data_dir)

    def adc(pin):
        if bd.CPU == "rp2040":
            return machine.ADC(Pin(pin))
        return machine.ADC(Pin(pin), atten=machine.ADC.ATTN_11DB)

    def out(pin, level):
        return Pin(pin, Pin.OUT, value=level)

    def inp(pin, active_low):
        return Pin(pin, Pin.IN, Pin.PULL_UP if active_low else Pin.PULL_DOWN)

    # outputs first, at their safe level (boot.py did this already on a board)
    hw._balance = machine.PWM(out(bd.BALANCE_PIN, 0), freq=bd.BALANCE_PWM_HZ, duty_u16=0)
    hw._led = out(bd.LED_PIN, 0)
    if role == "end":
        hw._relay_on = 1 if bd.RELAY_ACTIVE_HIGH else 0
        hw._relay_off = 1 - hw._relay_on
        hw._charge_relay = out(bd.CHARGE_RELAY_PIN, hw._relay_off)
        hw._load_relay = out(bd.LOAD_RELAY_PIN, hw._relay_off)
        hw._charge_led = out(bd.CHARGE_LED_PIN, 0)
        hw._load_led = out(bd.LOAD_LED_PIN, 0)

    hw._cell = Analog(adc(bd.CELL_ADC_PIN), bd.ADC_READ, bd.ADC_VREF_UV)
    if getattr(bd, "CELL_PROBE_EVERY", 0) > 0:
        # after the ADC's own set-up (which releases the pad's pulls)
        hw._probe = _Probe(Pin, bd.CELL_ADC_PIN, getattr(bd, "CELL_PROBE_PIN", None))
        hw.has_cell_probe = True
    if bd.NTC_ADC_PIN is not None and getattr(bd, "NTC_PROBE_EVERY", 0) > 0:
        test_pin = getattr(bd, "NTC_PROBE_PIN", None)
        if test_pin is not None and test_pin == getattr(bd, "CELL_PROBE_PIN", None) and hw._probe is not None:
            hw._temp_probe = hw._probe         # one test pin, a resistor to each node
        else:
            hw._temp_probe = _Probe(Pin, bd.NTC_ADC_PIN, test_pin)
        hw.has_temp_probe = True
    hw._ntc = None if bd.NTC_ADC_PIN is None else Analog(adc(bd.NTC_ADC_PIN), bd.ADC_READ, bd.ADC_VREF_UV)
    if bd.CPU == "rp2040":
        hw._chip = _ChipTemp(analog=Analog(machine.ADC(4), "read_u16", bd.ADC_VREF_UV))
    else:
        if esp32 is None:
            try:
                esp32 = __import__("esp32")
            except ImportError:
                esp32 = None
        hw._chip = _ChipTemp(read_c=getattr(esp32, "mcu_temperature", None),
                             read_f=getattr(esp32, "raw_temperature", None))

    hw._button = inp(bd.BUTTON_PIN, bd.BUTTON_ACTIVE_LOW)
    hw._button_down_level = 0 if bd.BUTTON_ACTIVE_LOW else 1

    if role == "begin":
        hw._switches = tuple(inp(p, bd.SWITCH_ACTIVE_LOW) for p in bd.SWITCH_PINS)
        hw._switch_invert = 1 if bd.SWITCH_ACTIVE_LOW else 0
        if bd.CURRENT_ADC == "ads1115":
            from hal import ads1115  # image: begin
            if sleep_us is None:
                import time
                sleep_us = time.sleep_us
            i2c = machine.I2C(bd.ADS1115_I2C_ID, sda=Pin(bd.ADS1115_SDA_PIN), scl=Pin(bd.ADS1115_SCL_PIN),
                              freq=bd.ADS1115_I2C_HZ)
            ads = ads1115.ADS1115(i2c, bd.ADS1115_ADDR, sleep_us)
            hw.ads1115 = ads
            hw._current = tuple((ads1115.Channel(ads, lo), ads1115.Channel(ads, hi))
                                for lo, hi in bd.CURRENT_CHANNELS)
        else:
            hw._current = tuple((Analog(adc(lo), bd.ADC_READ, bd.ADC_VREF_UV),
                                 Analog(adc(hi), bd.ADC_READ, bd.ADC_VREF_UV))
                                for lo, hi in bd.CURRENT_CHANNELS)

    timeout_ms = bd.WDT_TIMEOUT_MS
    hw._wdt_factory = lambda: machine.WDT(timeout=timeout_ms)

    # link and BLE: other hal modules, imported only now
    if link is None:
        link = _link_module()
    if role != "end":
        hw.link_tx = link.make_tx(bd, bd.LINK_OUT_PIN, bd.LINK_INVERT, bd.LINK_BAUD)
    if role != "begin":
        hw.link_rx = link.make_rx(bd)
    if role == "end":
        hw.extout_tx = link.make_tx(bd, bd.EXTOUT_PIN, bd.EXTOUT_INVERT, bd.EXTOUT_BAUD)
        if bd.HAS_BLE:
            if ble is None:
                ble = _ble_module()
            hw.ble = ble.make(bd)
    return hw
