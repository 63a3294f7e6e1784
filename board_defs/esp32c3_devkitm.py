"""Espressif ESP32-C3-DevKitM-1 (RISC-V, Bluetooth LE): Between board. Data only, no logic.

Usable GPIOs on this module are few: 11..17 are flash, 2/8/9 are strapping (8 drives the on-board
RGB LED, 9 the BOOT button), 18/19 are reserved for USB-serial/JTAG by the generic C3 firmware,
20/21 are UART0 (REPL). That leaves 0, 1, 3, 4, 5, 6, 7, 10: enough for a Between board but not
for the Begin board's 8 switches or the End board's relays, so the C3 is a Between board only
even though it has BLE. ADC1 is GPIO0..4. See docs/wiring.md.
"""

NAME = "esp32c3_devkitm"
TITLE = "ESP32-C3-DevKitM-1"
CPU = "esp32c3"
MPY_ARCH = "rv32imc"
ROLES = ("between",)
HAS_BLE = True
WDT_TIMEOUT_MS = 5000

CELL_ADC_PIN = 3               # ADC1_CH3, cell through a 5:2 divider
CELL_DIVIDER_NUM = 5
CELL_DIVIDER_DEN = 2
ADC_READ = "read_uv"
ADC_VREF_UV = None

# Input self-test (core/probe.py): every CELL_PROBE_EVERY cycles the ADC pad's pull-down loads
# the divider node (50-80 kOhm against the divider's 50 kOhm source): a live input reads
# 0.38-0.62 of its unloaded value, a frozen one does not move -> VOLT_SENSOR_FAULT.
CELL_PROBE_EVERY = 2
CELL_PROBE_PIN = None          # None: the ADC pad's own pull-down
CELL_PROBE_MIN_PERMILLE = 300
CELL_PROBE_MAX_PERMILLE = 900

NTC_ADC_PIN = 4                # ADC1_CH4
NTC_BETA = 3950
NTC_R25_OHM = 10000
NTC_SERIES_OHM = 10000
NTC_SUPPLY_UV = 2500000

# NTC input self-test: the same with the NTC node (source resistance NTC || series resistor:
# a live input reads 0.88 (-20 degC) .. 0.985 (80 degC) of its value, a frozen one 1.0).
NTC_PROBE_EVERY = 2
NTC_PROBE_PIN = None
NTC_PROBE_MIN_PERMILLE = 500
NTC_PROBE_MAX_PERMILLE = 995

BALANCE_PIN = 10               # floats at reset: 100 kOhm pull-down on the MOSFET gate
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 1800        # absolute floor, below every balance switch value (the rule that
#                                protects is the End's consent: balancing only while the pack charges)
EXTERNAL_PULL_DOWN_PINS = (10,)

LINK_IN_PIN = 6
LINK_OUT_PIN = 7
LINK_BAUD = 9600
LINK_INVERT = True
LINK_BACKEND = "uart"
LINK_UART_ID = 1
LIGHT_SLEEP = True             # between frames, timer wake only (the C3 has no ext0 wake-up)
SLEEP_WAKE_MS = 2              # light sleep -> running (estimate)

LED_PIN = 5                    # external LED + resistor to GND (GPIO8 is the strapping RGB LED)
BUTTON_PIN = 1                 # external button to GND
BUTTON_ACTIVE_LOW = True

# Begin-board inputs: not on this board.
SWITCH_PINS = None
SWITCH_ACTIVE_LOW = True
CURRENT_ADC = None
CURRENT_CHANNELS = None
CURRENT_LOW_RANGE_A = 20
CURRENT_HIGH_RANGE_A = 500
CURRENT_LOW_UV_PER_A = 50000
CURRENT_HIGH_UV_PER_A = 2000
CURRENT_LOW_ZERO_UV = 1250000
CURRENT_HIGH_ZERO_UV = 1250000
CURRENT_ZERO_UV = 1250000

# End-board outputs: not on this board.
CHARGE_RELAY_PIN = None
LOAD_RELAY_PIN = None
RELAY_ACTIVE_HIGH = True
CHARGE_LED_PIN = None
LOAD_LED_PIN = None
EXTOUT_PIN = None
EXTOUT_INVERT = True
EXTOUT_BAUD = 9600
EXTOUT_UART_ID = None
