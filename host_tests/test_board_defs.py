"""Every board definition: complete, data only, real and valid pins, roles consistent with BLE."""
import ast
import importlib
import math
import os

import board_defs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMON = ("NAME", "TITLE", "CPU", "MPY_ARCH", "ROLES", "HAS_BLE", "WDT_TIMEOUT_MS",
          "CELL_ADC_PIN", "CELL_DIVIDER_NUM", "CELL_DIVIDER_DEN", "ADC_READ", "ADC_VREF_UV",
          "NTC_ADC_PIN", "NTC_BETA", "NTC_R25_OHM", "NTC_SERIES_OHM", "NTC_SUPPLY_UV",
          "BALANCE_PIN", "BALANCE_PWM_HZ", "LINK_IN_PIN", "LINK_OUT_PIN", "LINK_BAUD",
          "LINK_INVERT", "LINK_BACKEND", "LINK_UART_ID", "LED_PIN", "BUTTON_PIN",
          "BUTTON_ACTIVE_LOW", "SWITCH_PINS", "SWITCH_ACTIVE_LOW", "CURRENT_ADC",
          "CURRENT_CHANNELS", "CURRENT_LOW_RANGE_A", "CURRENT_HIGH_RANGE_A",
          "CURRENT_LOW_UV_PER_A", "CURRENT_HIGH_UV_PER_A", "CURRENT_LOW_ZERO_UV",
          "CURRENT_HIGH_ZERO_UV", "CURRENT_ZERO_UV", "CHARGE_RELAY_PIN", "LOAD_RELAY_PIN",
          "RELAY_ACTIVE_HIGH", "CHARGE_LED_PIN", "LOAD_LED_PIN", "EXTOUT_PIN", "EXTOUT_INVERT",
          "EXTOUT_BAUD", "EXTOUT_UART_ID")

ARCH = {"rp2040": "armv6m", "esp32": "xtensawin", "esp32c3": "rv32imc"}

# GPIOs a board may use, per module (broken out, not flash, not strapping, not the REPL UART).
RP2040_GPIO = set(range(0, 23)) | {26, 27, 28}
GPIO_OK = {
    "pico": RP2040_GPIO | {25},                       # GP25 = on-board LED
    "pico_w": RP2040_GPIO | {"LED"},                  # GP23/24/25/29 belong to the radio
    "esp32_devkitc": {4, 13, 14, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33, 34, 35, 36, 39},
    "esp32c3_devkitm": {0, 1, 3, 4, 5, 6, 7, 10},
}
ADC_OK = {
    "rp2040": {26, 27, 28},
    "esp32": {32, 33, 34, 35, 36, 39},                # ADC1 only: ADC2 conflicts with the radio
    "esp32c3": {0, 1, 2, 3, 4},                       # ADC1 (GPIO5 is ADC2)
}
INPUT_ONLY = {"esp32": {34, 35, 36, 39}}
# Input span at the ADC pin in uV (ESP32 11 dB attenuation: calibrated about 0.15..2.45 V).
ADC_SPAN_UV = {"rp2040": (0, 3300000), "esp32": (150000, 2450000), "esp32c3": (0, 2500000)}
ADS1115_SPAN_UV = (0, 3300000)   # +-4.096 V PGA, inputs limited to VDD = 3.3 V


def _defs():
    return [importlib.import_module("board_defs." + name) for name in board_defs.BOARDS]


def _role_pins(d, role):
    """(label, pin) for every pin a role uses on this board."""
    if role == "gateway":
        return [("led", d.LED_PIN), ("extin", d.EXTIN_PIN), ("spi sck", d.CAN_SCK_PIN),
                ("spi mosi", d.CAN_MOSI_PIN), ("spi miso", d.CAN_MISO_PIN), ("can cs", d.CAN_CS_PIN)] + (
            [("extin uart tx", d.EXTIN_UART_TX_PIN)] if d.EXTIN_BACKEND == "uart" else [])
    pins = [("cell adc", d.CELL_ADC_PIN), ("balance", d.BALANCE_PIN), ("led", d.LED_PIN),
            ("button", d.BUTTON_PIN)]
    if d.NTC_ADC_PIN is not None:
        pins.append(("ntc adc", d.NTC_ADC_PIN))
    if role != "begin":
        pins.append(("link in", d.LINK_IN_PIN))
    if role != "end":
        pins.append(("link out", d.LINK_OUT_PIN))
    if role == "begin":
        pins += [("switch %d" % (i + 1), p) for i, p in enumerate(d.SWITCH_PINS)]
        if d.CURRENT_ADC == "ads1115":
            pins += [("i2c sda", d.ADS1115_SDA_PIN), ("i2c scl", d.ADS1115_SCL_PIN)]
        else:
            for s, (lo, hi) in enumerate(d.CURRENT_CHANNELS):
                pins += [("sensor %d low" % (s + 1), lo), ("sensor %d high" % (s + 1), hi)]
    if role == "end":
        pins += [("charge relay", d.CHARGE_RELAY_PIN), ("load relay", d.LOAD_RELAY_PIN),
                 ("charge led", d.CHARGE_LED_PIN), ("load led", d.LOAD_LED_PIN),
                 ("extout", d.EXTOUT_PIN)]
    return pins


def test_registry_matches_files():
    files = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "board_defs"))
                   if f.endswith(".py") and f != "__init__.py")
    assert sorted(board_defs.BOARDS) == files
    assert len(files) == 4


def test_definitions_are_data_only():
    for name in board_defs.BOARDS:
        with open(os.path.join(ROOT, "board_defs", name + ".py")) as f:
            tree = ast.parse(f.read())
        for i, node in enumerate(tree.body):
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstring
            assert isinstance(node, ast.Assign), "%s: only assignments allowed, line %d" % (name, node.lineno)
            assert len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            assert node.targets[0].id.isupper(), "%s: %s is not a CONSTANT" % (name, node.targets[0].id)
            ast.literal_eval(node.value)  # raises on calls, names, anything but literals


def test_every_definition_complete():
    for d in _defs():
        missing = [k for k in COMMON if not hasattr(d, k)]
        assert not missing, "%s lacks %s" % (d.NAME, missing)
        assert d.NAME == d.__name__.split(".")[-1]
        assert ARCH[d.CPU] == d.MPY_ARCH
        assert d.ROLES and set(d.ROLES) <= set(board_defs.ROLE_NAMES)
        assert isinstance(d.ROLES, tuple)
        assert 1000 <= d.WDT_TIMEOUT_MS <= 8000      # RP2040 max ~8.3 s
        assert d.LINK_BAUD == 9600 and d.EXTOUT_BAUD == 9600
        assert d.LINK_BACKEND in ("pio", "uart", "soft")
        if d.LINK_BACKEND == "pio":
            assert d.CPU == "rp2040"
        if d.LINK_BACKEND == "uart":
            assert d.LINK_UART_ID in (1, 2)              # never UART0: that is the REPL
        assert isinstance(d.LINK_INVERT, bool) and isinstance(d.BUTTON_ACTIVE_LOW, bool)
        assert d.EXTOUT_INVERT is True                   # idle low, as the original End board


def test_end_only_with_ble():
    for d in _defs():
        if "end" in d.ROLES:
            assert d.HAS_BLE, d.NAME
    names = {d.NAME: d for d in _defs()}
    assert "end" not in names["pico"].ROLES
    assert "end" in names["pico_w"].ROLES and "end" in names["esp32_devkitc"].ROLES
    # every role is available on some board
    assert set().union(*(set(d.ROLES) for d in _defs())) == set(board_defs.ROLE_NAMES)


def test_adc_reading_kind():
    for d in _defs():
        if d.CPU == "rp2040":
            assert d.ADC_READ == "read_u16" and d.ADC_VREF_UV == 3300000
        else:
            assert d.ADC_READ == "read_uv"


def test_pins_valid_unique_and_adc_capable_per_role():
    for d in _defs():
        ok = GPIO_OK[d.NAME]
        for role in d.ROLES:
            pins = _role_pins(d, role)
            for label, p in pins:
                assert p in ok, "%s/%s: %s pin %r is not a usable GPIO" % (d.NAME, role, label, p)
            used = [p for _, p in pins]
            dup = sorted({str(p) for p in used if used.count(p) > 1})
            assert not dup, "%s/%s: pins used twice: %s" % (d.NAME, role, dup)
            adc = [d.CELL_ADC_PIN] + ([d.NTC_ADC_PIN] if d.NTC_ADC_PIN is not None else [])
            if role == "begin" and d.CURRENT_ADC == "adc":
                adc += [p for pair in d.CURRENT_CHANNELS for p in pair]
            for p in adc:
                assert p in ADC_OK[d.CPU], "%s: pin %d is not ADC-capable" % (d.NAME, p)
            outputs = [p for label, p in pins if label in ("balance", "led", "link out", "charge relay",
                                                           "load relay", "charge led", "load led", "extout")]
            pulls = [p for label, p in pins if label.startswith("switch") or label == "button"]
            for p in outputs + pulls:
                assert p not in INPUT_ONLY.get(d.CPU, ()), "%s: pin %r is input-only" % (d.NAME, p)


def test_begin_inputs():
    for d in _defs():
        if "begin" not in d.ROLES:
            continue
        assert len(d.SWITCH_PINS) == 8
        assert len(d.CURRENT_CHANNELS) == 2
        assert all(len(pair) == 2 for pair in d.CURRENT_CHANNELS)
        if d.CURRENT_ADC == "ads1115":
            chans = [c for pair in d.CURRENT_CHANNELS for c in pair]
            assert sorted(chans) == [0, 1, 2, 3]
            assert d.ADS1115_ADDR in (0x48, 0x49, 0x4A, 0x4B)
            assert d.ADS1115_I2C_ID in (0, 1)
            # RP2040 I2C0 SDA on GP0/4/8/12/16/20, SCL on GP1/5/9/13/17/21 (I2C1: +2)
            base = 2 * d.ADS1115_I2C_ID
            assert (d.ADS1115_SDA_PIN - base) % 4 == 0 and (d.ADS1115_SCL_PIN - base - 1) % 4 == 0
        else:
            assert d.CURRENT_ADC == "adc"


def test_end_outputs():
    for d in _defs():
        if "end" in d.ROLES:
            for k in ("CHARGE_RELAY_PIN", "LOAD_RELAY_PIN", "CHARGE_LED_PIN", "LOAD_LED_PIN", "EXTOUT_PIN"):
                assert getattr(d, k) is not None, (d.NAME, k)
            if d.CPU != "rp2040":
                assert d.EXTOUT_UART_ID in (1, 2) and d.EXTOUT_UART_ID != d.LINK_UART_ID


def test_analog_ranges_fit_the_adc():
    for d in _defs():
        lo, hi = ADC_SPAN_UV[d.CPU]
        assert isinstance(d.CELL_DIVIDER_NUM, int) and isinstance(d.CELL_DIVIDER_DEN, int)
        assert d.CELL_DIVIDER_NUM >= d.CELL_DIVIDER_DEN > 0
        # the cell range 1.5..5.0 V must land inside the ADC span
        assert 1500000 * d.CELL_DIVIDER_DEN // d.CELL_DIVIDER_NUM >= lo
        assert 5000000 * d.CELL_DIVIDER_DEN // d.CELL_DIVIDER_NUM <= hi
        assert d.NTC_BETA > 0 and d.NTC_R25_OHM > 0 and d.NTC_SERIES_OHM > 0
        if d.NTC_ADC_PIN is not None:
            # NTC to GND, series resistor to the supply: the pin stays inside the ADC span over
            # the board's whole operating range -40..85 degC (manual, specifications)
            for t_c in (-40, -20, 0, 25, 60, 85):
                r = d.NTC_R25_OHM * math.exp(d.NTC_BETA * (1 / (t_c + 273.15) - 1 / 298.15))
                pin_uv = d.NTC_SUPPLY_UV * r / (r + d.NTC_SERIES_OHM)
                assert lo <= pin_uv <= hi, (d.NAME, t_c, pin_uv)
        assert d.CURRENT_LOW_RANGE_A == 20 and d.CURRENT_HIGH_RANGE_A == 500
        if "begin" in d.ROLES:
            span = ADS1115_SPAN_UV if d.CURRENT_ADC == "ads1115" else (lo, hi)
            for rng, per_a, zero in ((20, d.CURRENT_LOW_UV_PER_A, d.CURRENT_LOW_ZERO_UV),
                                     (500, d.CURRENT_HIGH_UV_PER_A, d.CURRENT_HIGH_ZERO_UV)):
                assert span[0] <= zero - rng * per_a and zero + rng * per_a <= span[1], d.NAME
        for k in ("CURRENT_LOW_UV_PER_A", "CURRENT_HIGH_UV_PER_A", "CURRENT_ZERO_UV", "NTC_SUPPLY_UV"):
            assert isinstance(getattr(d, k), int)


def test_wiring_doc_matches_definitions():
    import subprocess
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import wiring_table
    doc = open(os.path.join(ROOT, "docs", "wiring.md")).read()
    block = doc[doc.index(wiring_table.BEGIN) + len(wiring_table.BEGIN):doc.index(wiring_table.END)]
    assert block.strip() == wiring_table.tables().strip(), "run: python tools/wiring_table.py --write"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "wiring_table.py")],
                         capture_output=True, text=True, check=True).stdout
    assert "| Charge relay driver (high = allowed) | GP16 | end |" in out


# ---- pin check: reset state, strapping, flash, input-only, UART pins (issue 13, item 7) --------
#
# Pad state between reset and boot.py, from the chips' datasheets (ESP32 datasheet, "Pin
# Description" reset column / IO_MUX; ESP32-C3 datasheet pin list; RP2040 datasheet, pads bank
# reset values). "pull-up" and "boot" (JTAG pads, UART0 traffic, boot-time PWM) may look like
# "on" to a driver; "float" needs an external pull-down (EXTERNAL_PULL_DOWN_PINS); "pull-down"
# is safe for an active-high driver.
_ESP32_RESET = {0: "pull-up", 1: "boot", 2: "pull-down", 3: "boot", 4: "pull-down", 5: "pull-up",
                12: "boot", 13: "boot", 14: "pull-up", 15: "pull-up"}
for _p in (6, 7, 8, 9, 10, 11):
    _ESP32_RESET[_p] = "flash"
for _p in (16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33, 34, 35, 36, 39):
    _ESP32_RESET[_p] = "float"
_C3_RESET = {2: "boot", 8: "boot", 9: "pull-up", 18: "boot", 19: "pull-up", 20: "boot", 21: "boot"}
for _p in (0, 1, 3, 4, 5, 6, 7, 10):
    _C3_RESET[_p] = "float"
for _p in (11, 12, 13, 14, 15, 16, 17):
    _C3_RESET[_p] = "flash"
RESET_STATE = {"esp32": _ESP32_RESET, "esp32c3": _C3_RESET,
               "rp2040": dict((p, "pull-down") for p in RP2040_GPIO)}
STRAPPING = {"esp32": {0, 2, 5, 12, 15}, "esp32c3": {2, 8, 9}, "rp2040": set()}
FLASH = {"esp32": set(range(6, 12)), "esp32c3": set(range(12, 18)), "rp2040": set()}
POWER_SWITCHES = ("balance", "charge relay", "load relay")
OUTPUT_LABELS = POWER_SWITCHES + ("led", "link out", "charge led", "load led", "extout")


def _uart_pins(d, role):
    """(label, pin) of every pin a UART of this role is routed to, including unused directions."""
    pins = []
    if role == "gateway":
        if d.EXTIN_BACKEND == "uart":
            pins += [("extin uart tx", d.EXTIN_UART_TX_PIN), ("extin uart rx", d.EXTIN_PIN)]
        return pins
    if d.LINK_BACKEND == "uart" and d.LINK_UART_ID is not None:
        pins += [("link uart tx", d.LINK_OUT_PIN), ("link uart rx", d.LINK_IN_PIN)]
    if role == "end" and d.EXTOUT_UART_ID is not None:
        pins += [("extout uart tx", d.EXTOUT_PIN), ("extout uart rx", getattr(d, "EXTOUT_UART_RX_PIN", None))]
    return pins


def pin_problems(d):
    """Every pin-check failure of one board definition, as text (empty = passes)."""
    problems = []
    reset = RESET_STATE[d.CPU]
    ext_pd = set(getattr(d, "EXTERNAL_PULL_DOWN_PINS", ()))
    for role in d.ROLES:
        for label, p in _role_pins(d, role) + _uart_pins(d, role):
            if p == "LED":      # Pico W: behind the radio chip, not a GPIO of the RP2040
                continue
            where = "%s/%s: %s on GPIO%s" % (d.NAME, role, label, p)
            if p is None:
                problems.append(where + ": a UART pin left to the port's default")
                continue
            if p in FLASH[d.CPU]:
                problems.append(where + " is a flash pin")
            if p in STRAPPING[d.CPU]:
                problems.append(where + " is a strapping pin")
            if (label in OUTPUT_LABELS or label.endswith("uart tx")) and p in INPUT_ONLY.get(d.CPU, ()):
                problems.append(where + " is input-only")
            if label in POWER_SWITCHES:
                state = reset.get(p, "unknown")
                if label != "balance" and not d.RELAY_ACTIVE_HIGH:
                    problems.append(where + ": active-low relay (a reset pull-down would switch it on)")
                if state not in ("pull-down", "float"):
                    problems.append("%s is %s at reset" % (where, state))
                elif state == "float" and p not in ext_pd:
                    problems.append(where + " floats at reset: list its external pull-down")
    return problems


def test_pin_check_reset_state_strapping_flash_input_only():
    for d in _defs():
        assert pin_problems(d) == [], pin_problems(d)


def test_pin_check_catches_the_old_devkitc_pins():
    """Issue 13, item 7: the load relay on GPIO14 and UART1 with only tx=21 must fail."""
    from board_defs import esp32_devkitc

    class Old:
        pass

    for k in dir(esp32_devkitc):
        if k.isupper():
            setattr(Old, k, getattr(esp32_devkitc, k))
    Old.CHARGE_RELAY_PIN, Old.LOAD_RELAY_PIN = 13, 14
    Old.EXTOUT_UART_RX_PIN = None
    text = "\n".join(pin_problems(Old))
    assert "load relay on GPIO14 is pull-up at reset" in text
    assert "charge relay on GPIO13 is boot at reset" in text
    assert "extout uart rx on GPIONone: a UART pin left to the port's default" in text
    Old.LOAD_RELAY_PIN = 9
    assert "load relay on GPIO9 is a flash pin" in "\n".join(pin_problems(Old))


def test_uart_pins_do_not_collide_with_the_roles_other_pins():
    for d in _defs():
        for role in d.ROLES:
            own = dict((p, label) for label, p in _role_pins(d, role))
            for label, p in _uart_pins(d, role):
                if p in own:
                    # the UART's own pin is the role's pin of the same job
                    assert own[p] in ("link out", "link in", "extout", "extin", "extin uart tx"), (d.NAME, role, label, p, own[p])


def test_esp32_devkitc_keeps_relays_off_jtag_and_uart1_off_gpio9():
    from board_defs import esp32_devkitc as d
    assert d.LOAD_RELAY_PIN != 14 and d.CHARGE_RELAY_PIN not in (12, 13, 14, 15)
    assert d.EXTOUT_UART_RX_PIN is not None and d.EXTOUT_UART_RX_PIN not in FLASH["esp32"]
    assert set(d.EXTERNAL_PULL_DOWN_PINS) >= {d.BALANCE_PIN, d.CHARGE_RELAY_PIN, d.LOAD_RELAY_PIN}


def test_balance_floor_is_set_and_sane():
    for d in _defs():
        assert 1500 <= d.BALANCE_FLOOR_MV <= 4000, d.NAME
