"""hal.board.make_hw and hal.ads1115 against an injected fake ``machine`` (both interpreters).

The fakes record what the hal does to pins; the hal's per-cycle methods must not allocate.
"""
import sys

from support import ON_MICROPYTHON, no_alloc, raises, tmpdir


def _root():
    here = __file__
    for _ in range(3):
        here = here.rsplit("/", 1)[0] if "/" in here else "."
    return here


if _root() not in sys.path:
    sys.path.append(_root())

from board_defs import esp32_devkitc, esp32c3_devkitm, pico, pico_w  # noqa: E402
from hal import ads1115, board  # noqa: E402


def fake_machine(reset=1):
    """A fresh fake machine module. ``m.pins[id]`` are the pins the hal created."""

    class M:
        pass

    m = M()
    m.pins = {}
    m.adc_values = {}      # pin id -> read_u16 / read_uv value
    m.wdts = []
    m.ads_uv = [0, 0, 0, 0]
    m.i2c_fail = False
    m.ads_ready = True
    m.PWRON_RESET = 1
    m.HARD_RESET = 2
    m.WDT_RESET = 3
    m.SOFT_RESET = 5

    class Pin:
        OUT = 1
        IN = 0
        PULL_UP = 1
        PULL_DOWN = 2

        def __init__(self, pid, mode=-1, pull=-1, value=None):
            self.id = pid
            self.mode = mode
            self.pull = pull
            self.level = 0 if value is None else value
            self.history = [] if value is None else [value]
            m.pins[pid] = self

        def value(self, v=None):
            if v is None:
                return self.level
            self.level = v
            return None

    class ADC:
        ATTN_11DB = 3

        def __init__(self, src, atten=None):
            self.id = src.id if isinstance(src, Pin) else ("core", src)
            self.atten = atten

        def read_u16(self):
            return m.adc_values.get(self.id, 0)

        def read_uv(self):
            return m.adc_values.get(self.id, 0)

    class PWM:
        def __init__(self, pin, freq=0, duty_u16=0):
            self.pin = pin
            self.freq = freq
            self.duty = duty_u16
            m.pwm = self

        def duty_u16(self, d):
            self.duty = d

    class I2C:
        def __init__(self, bus, sda=None, scl=None, freq=0):
            self.bus = bus
            self.sda = sda
            self.scl = scl
            self.freq = freq
            self.mux = 0
            m.i2c = self

        def writeto(self, addr, buf):
            """[register, data...]: what hal.ads1115 sends (no writeto_mem: it allocates)."""
            if m.i2c_fail:
                raise OSError(19)
            assert isinstance(buf, bytearray)          # the preallocated buffer, not a new one
            if buf[0] == 1:
                self.mux = (buf[1] >> 4) & 7
            return 1

        def readfrom_mem_into(self, addr, reg, buf):
            if m.i2c_fail:
                raise OSError(19)
            if reg == 1:
                buf[0] = 0x80 if m.ads_ready else 0
                buf[1] = 0
            else:
                raw = m.ads_uv[self.mux - 4] // 125
                if raw < 0:
                    raw += 0x10000
                buf[0] = raw >> 8
                buf[1] = raw & 0xFF

    class WDT:
        def __init__(self, timeout=0):
            self.timeout = timeout
            self.fed = 0
            m.wdts.append(self)

        def feed(self):
            self.fed += 1

    def reset_cause():
        return reset

    m.Pin = Pin
    m.ADC = ADC
    m.PWM = PWM
    m.I2C = I2C
    m.WDT = WDT
    m.reset_cause = reset_cause
    return m


class FakeLink:
    def __init__(self):
        self.calls = []

    def make_tx(self, bd, pin, invert, baud):
        self.calls.append(("tx", pin, invert, baud))
        return ("tx", pin)

    def make_rx(self, bd):
        self.calls.append(("rx",))
        return ("rx", bd.LINK_IN_PIN)


class FakeBle:
    def make(self, bd):
        return ("ble", bd.NAME)


class FakeEsp32:
    def __init__(self, c=None, f=None):
        if c is not None:
            self.mcu_temperature = lambda: c
        if f is not None:
            self.raw_temperature = lambda: f


def _sleep_us(us):
    return None


def _hw(bd, role, m=None, **kw):
    m = m or fake_machine()
    hw = board.make_hw(bd, role, data_dir=tmpdir() + "/data", machine=m, link=FakeLink(),
                       ble=FakeBle(), sleep_us=_sleep_us, **kw)
    return hw, m


def test_u16_scale_fits_small_ints_and_is_accurate():
    for vref in (3300000, 3000000, 1800000, 2048000, 5000000):
        mul, shift = board.u16_scale(vref)
        assert 65535 * mul < (1 << 30)
        for raw in (0, 1, 100, 4095, 32768, 50000, 65535):
            got = (raw * mul) >> shift
            exact = raw * vref // 65535
            assert abs(got - exact) <= exact // 5000 + 1, (vref, raw, got, exact)


def test_pico_begin_cell_ntc_switches_currents():
    hw, m = _hw(pico, "begin")
    m.adc_values[26] = 32768
    assert abs(hw.read_cell_uv() - 1650025) <= 350   # 0.02 %
    m.adc_values[27] = 65535
    assert abs(hw.read_temp_uv() - 3300000) <= 660
    for p in pico.SWITCH_PINS:
        assert m.pins[p].pull == m.Pin.PULL_UP
        m.pins[p].level = 1                             # pulled up = OFF
    assert hw.read_switches() == 0
    m.pins[pico.SWITCH_PINS[0]].level = 0               # switch 1 ON
    assert hw.read_switches() == 0x80
    m.pins[pico.SWITCH_PINS[7]].level = 0               # switch 8 ON
    assert hw.read_switches() == 0x81
    # ADS1115 on I2C0 GP4/GP5, channels as the definition says
    assert m.i2c.bus == 0 and m.i2c.sda.id == 4 and m.i2c.scl.id == 5
    m.ads_uv[0] = 1650000
    m.ads_uv[1] = 1800000
    m.ads_uv[2] = 125000
    m.ads_uv[3] = 3000000
    assert hw.read_current_uv(1, False) == 1650000
    assert hw.read_current_uv(1, True) == 1800000
    assert hw.read_current_uv(2, False) == 125000
    assert hw.read_current_uv(2, True) == 3000000
    assert hw.link_rx is None and hw.link_tx == ("tx", pico.LINK_OUT_PIN)
    assert hw._charge_relay is None and hw.extout_tx is None and hw.ble is None


def test_ads1115_errors_are_values():
    hw, m = _hw(pico, "begin")
    m.i2c_fail = True
    assert hw.read_current_uv(1, False) == board.READ_ERROR_UV == ads1115.ERROR_UV
    m.i2c_fail = False
    m.ads_ready = False                                # conversion never completes
    assert hw.read_current_uv(2, True) == ads1115.ERROR_UV
    assert hw.ads1115.errors == 2
    m.ads_ready = True
    m.ads_uv[0] = -250                                  # slightly below GND: signed result
    assert hw.read_current_uv(1, False) == -250


def test_esp32_begin_reads_uv_on_adc1_pins():
    hw, m = _hw(esp32_devkitc, "begin")
    m.adc_values[36] = 1234567
    assert hw.read_cell_uv() == 1234567
    for s in (1, 2):
        lo, hi = esp32_devkitc.CURRENT_CHANNELS[s - 1]
        m.adc_values[lo] = 1000000 + s
        m.adc_values[hi] = 2000000 + s
        assert hw.read_current_uv(s, False) == 1000000 + s
        assert hw.read_current_uv(s, True) == 2000000 + s


def test_end_relays_leds_extout_ble_and_safe():
    link = FakeLink()
    m = fake_machine()
    hw = board.make_hw(esp32_devkitc, "end", data_dir=tmpdir() + "/d", machine=m, link=link,
                       ble=FakeBle(), esp32=FakeEsp32(c=40))
    bd = esp32_devkitc
    for p in (bd.CHARGE_RELAY_PIN, bd.LOAD_RELAY_PIN, bd.CHARGE_LED_PIN, bd.LOAD_LED_PIN):
        assert m.pins[p].history[0] == 0, p             # created at the safe level
    hw.set_charge_relay(True)
    hw.set_load_relay(True)
    hw.set_charge_led(True)
    assert m.pins[bd.CHARGE_RELAY_PIN].level == 1 and m.pins[bd.LOAD_RELAY_PIN].level == 1
    hw.set_balance_duty(500)
    assert m.pwm.duty == 32767
    hw.safe()
    for p in (bd.CHARGE_RELAY_PIN, bd.LOAD_RELAY_PIN, bd.CHARGE_LED_PIN, bd.LOAD_LED_PIN, bd.LED_PIN):
        assert m.pins[p].level == 0, p
    assert m.pwm.duty == 0
    assert hw.extout_tx == ("tx", bd.EXTOUT_PIN)
    assert ("tx", bd.EXTOUT_PIN, True, 9600) in link.calls
    assert ("rx",) in link.calls and hw.link_tx is None
    assert hw.ble == ("ble", "esp32_devkitc")
    assert hw.read_chip_temp_dc() == 400


def test_balance_duty_clamped():
    hw, m = _hw(pico_w, "between")
    for permille, duty in ((-5, 0), (0, 0), (1, 65), (999, 65469), (1000, 65535), (5000, 65535)):
        hw.set_balance_duty(permille)
        assert m.pwm.duty == duty, (permille, m.pwm.duty)
    assert m.pwm.freq == pico_w.BALANCE_PWM_HZ


def test_button_led_and_pico_w_led_name():
    hw, m = _hw(pico_w, "between")
    assert "LED" in m.pins
    hw.set_led(True)
    assert m.pins["LED"].level == 1
    m.pins[pico_w.BUTTON_PIN].level = 1
    assert not hw.button_down()
    m.pins[pico_w.BUTTON_PIN].level = 0
    assert hw.button_down()


def test_chip_temperature():
    hw, m = _hw(pico, "between")
    m.adc_values[("core", 4)] = 706000 * 65535 // 3300000 + 1
    assert abs(hw.read_chip_temp_dc() - 270) <= 1
    m.adc_values[("core", 4)] = (706000 - 17210) * 65535 // 3300000
    assert abs(hw.read_chip_temp_dc() - 370) <= 1     # 10 K hotter
    hw, m = _hw(esp32c3_devkitm, "between", esp32=FakeEsp32(c=31))
    assert hw.read_chip_temp_dc() == 310
    hw, m = _hw(esp32c3_devkitm, "between", esp32=FakeEsp32(f=212))
    assert hw.read_chip_temp_dc() == 1000


def test_watchdog_starts_at_first_feed():
    hw, m = _hw(pico, "between")
    assert m.wdts == []
    hw.feed_watchdog()
    hw.feed_watchdog()
    assert len(m.wdts) == 1 and m.wdts[0].fed == 2 and m.wdts[0].timeout == pico.WDT_TIMEOUT_MS


def test_reset_cause_names():
    for code, name in ((1, "power"), (2, "hard"), (3, "watchdog"), (5, "soft"), (99, "unknown")):
        hw, m = _hw(pico, "between", m=fake_machine(reset=code))
        assert hw.reset_cause() == name


def test_wrong_role_and_missing_module_are_clear_errors():
    e = raises(board.BoardError, board.make_hw, pico, "end", "/tmp", fake_machine(), FakeLink())
    assert "pico" in str(e) and "end" in str(e)
    e = raises(board.BoardError, board.hal_module, "no_such_module_xyz")
    assert "hal.no_such_module_xyz" in str(e)


def test_data_dir_created_and_kept():
    base = tmpdir()
    path = base + "/a/b"
    board.ensure_dir(path)
    board.ensure_dir(path)                            # exists: fine
    with open(path + "/settings.json", "w") as f:
        f.write("{}")
    board.ensure_dir(path)
    with open(path + "/settings.json") as f:
        assert f.read() == "{}"
    with open(base + "/file", "w") as f:
        f.write("x")
    raises(board.BoardError, board.ensure_dir, base + "/file")
    hw, m = _hw(pico, "between")
    import os
    assert os.stat(hw.data_dir)[0] & 0x4000


def test_per_cycle_methods_do_not_allocate():
    hw, m = _hw(pico, "begin")
    hw2, m2 = _hw(esp32_devkitc, "end", esp32=FakeEsp32(c=30))
    hw2.feed_watchdog()
    hw3, _ = _hw(esp32_devkitc, "begin")

    def cycle():
        hw.read_cell_uv()
        hw.read_temp_uv()
        hw.read_chip_temp_dc()
        hw.read_switches()
        hw.read_current_uv(1, False)
        hw.read_current_uv(2, True)
        hw.set_balance_duty(333)
        hw.set_led(True)
        hw.button_down()
        hw2.set_charge_relay(True)
        hw2.set_load_relay(False)
        hw2.set_charge_led(True)
        hw2.set_load_led(False)
        hw2.feed_watchdog()
        hw2.read_cell_uv()
        hw3.read_current_uv(2, False)

    assert no_alloc(cycle)
    if ON_MICROPYTHON:
        assert m.pwm.duty == 333 * 65535 // 1000
