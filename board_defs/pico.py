"""Raspberry Pi Pico (RP2040, no radio): Begin or Between board. Data only, no logic.

Pin numbers are RP2040 GPIO numbers (GPn on the silkscreen). The RP2040 has only three usable ADC
inputs (GP26..GP28), so the four current-sensor channels of the Begin board go through an ADS1115
on I2C0. No Bluetooth: this board cannot be the End board. See docs/wiring.md.
"""

NAME = "pico"
TITLE = "Raspberry Pi Pico (RP2040)"
CPU = "rp2040"
MPY_ARCH = "armv6m"
ROLES = ("begin", "between")
HAS_BLE = False
WDT_TIMEOUT_MS = 5000          # RP2040 watchdog maximum is about 8.3 s

# Cell voltage: 1.5..5.0 V cell through a 2:1 divider (e.g. 100k/100k) -> 0.75..2.5 V at GP26.
CELL_ADC_PIN = 26              # ADC0
CELL_DIVIDER_NUM = 2           # cell_uv = pin_uv * NUM // DEN (nominal, before calibration)
CELL_DIVIDER_DEN = 1
ADC_READ = "read_u16"          # ADC.read_u16(): 0..65535 full scale = ADC_VREF_UV
ADC_VREF_UV = 3300000          # ADC reference (the Pico's 3V3 rail through its RC filter)

# Input self-test (core/probe.py): every CELL_PROBE_EVERY cycles the ADC pad's pull-down loads
# the divider node (50-80 kOhm against the divider's 50 kOhm source): a live input reads
# 0.38-0.62 of its unloaded value, a frozen one does not move -> VOLT_SENSOR_FAULT.
CELL_PROBE_EVERY = 2
CELL_PROBE_PIN = None          # None: the ADC pad's own pull-down
CELL_PROBE_MIN_PERMILLE = 300
CELL_PROBE_MAX_PERMILLE = 900

# Cell temperature: NTC from GP27 to GND, series resistor from the NTC supply to GP27.
NTC_ADC_PIN = 27               # ADC1
NTC_BETA = 3950
NTC_R25_OHM = 10000
NTC_SERIES_OHM = 10000
NTC_SUPPLY_UV = 3300000

# NTC input self-test: the same with the NTC node (source resistance NTC || series resistor:
# a live input reads 0.88 (-20 degC) .. 0.985 (80 degC) of its value, a frozen one 1.0).
NTC_PROBE_EVERY = 2
NTC_PROBE_PIN = None
NTC_PROBE_MIN_PERMILLE = 500
NTC_PROBE_MAX_PERMILLE = 995

# Balance resistor MOSFET gate (PWM for derated duty).
BALANCE_PIN = 15
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 1800        # absolute floor, below every balance switch value (the rule that
#                                protects is the End's consent: balancing only while the pack charges)

# Daisy-chain link through the opto-couplers (see docs/wiring.md).
LINK_IN_PIN = 1
LINK_OUT_PIN = 0
LINK_BAUD = 9600
LINK_INVERT = True             # the opto stage inverts: line idle = opto LED off
LINK_BACKEND = "pio"           # PIO state machines: exact bit timing without interrupts
LINK_UART_ID = None
LINK_PIO_SM_TX = 0             # state machine ids used by the link (0..7)
LINK_PIO_SM_RX = 1
LIGHT_SLEEP = True             # machine.lightsleep between frames (hal/sleep.py): PIO, PWM stop,
#                                the board is deaf; only with the balance output off or full on
SLEEP_WAKE_MS = 2              # light sleep -> running (estimate: PLL relock, clock set-up)

LED_PIN = 25                   # the Pico's green on-board LED
BUTTON_PIN = 14                # push button to GND, internal pull-up
BUTTON_ACTIVE_LOW = True

# Begin board: 8 option switches to GND (ON = closed = low), switch 1 first.
SWITCH_PINS = (6, 7, 8, 9, 10, 11, 12, 13)
SWITCH_ACTIVE_LOW = True

# Begin board: two dual-range current sensors, four channels on an ADS1115 (16 bit, +-4.096 V).
CURRENT_ADC = "ads1115"
ADS1115_I2C_ID = 0
ADS1115_SDA_PIN = 4
ADS1115_SCL_PIN = 5
ADS1115_I2C_HZ = 400000
ADS1115_ADDR = 0x48            # ADDR pin to GND
# ((sensor 1 low, sensor 1 high), (sensor 2 low, sensor 2 high)): ADS1115 inputs AIN0..AIN3.
CURRENT_CHANNELS = ((0, 1), (2, 3))
# Sensor scaling at the ADC input, one turn: output = ZERO + current * UV_PER_A.
# Low range +-20 A and high range +-500 A each span +-1.5 V around 1.65 V (3.3 V supply).
CURRENT_LOW_RANGE_A = 20
CURRENT_HIGH_RANGE_A = 500
CURRENT_LOW_UV_PER_A = 75000
CURRENT_HIGH_UV_PER_A = 3000
CURRENT_LOW_ZERO_UV = 1650000
CURRENT_HIGH_ZERO_UV = 1650000
CURRENT_ZERO_UV = 1650000

# End board outputs: not on this board (no BLE, no End role).
CHARGE_RELAY_PIN = None
LOAD_RELAY_PIN = None
RELAY_ACTIVE_HIGH = True
CHARGE_LED_PIN = None
LOAD_LED_PIN = None
EXTOUT_PIN = None
EXTOUT_INVERT = True
EXTOUT_BAUD = 9600
EXTOUT_UART_ID = None
