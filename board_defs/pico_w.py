"""Raspberry Pi Pico W (RP2040 + CYW43439 with Bluetooth LE): Begin, Between, End or gateway board.
Data only, no logic.

Same analog front end and link as the Pico. On the Pico W GP23/24/25/29 belong to the radio
module, so the on-board LED is the pin named "LED" (driven through the radio chip).
See docs/wiring.md.
"""

NAME = "pico_w"
TITLE = "Raspberry Pi Pico W (RP2040 + BLE)"
CPU = "rp2040"
MPY_ARCH = "armv6m"
ROLES = ("begin", "between", "end", "gateway")
HAS_BLE = True
WDT_TIMEOUT_MS = 5000

CELL_ADC_PIN = 26              # ADC0, cell through a 2:1 divider
CELL_DIVIDER_NUM = 2
CELL_DIVIDER_DEN = 1
ADC_READ = "read_u16"
ADC_VREF_UV = 3300000

# Input self-test (core/probe.py): every CELL_PROBE_EVERY cycles the ADC pad's pull-down loads
# the divider node (50-80 kOhm against the divider's 50 kOhm source): a live input reads
# 0.38-0.62 of its unloaded value, a frozen one does not move -> VOLT_SENSOR_FAULT.
CELL_PROBE_EVERY = 2
CELL_PROBE_PIN = None          # None: the ADC pad's own pull-down
CELL_PROBE_MIN_PERMILLE = 300
CELL_PROBE_MAX_PERMILLE = 900

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

BALANCE_PIN = 15
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 1800        # absolute floor, below every balance switch value (the rule that
#                                protects is the End's consent: balancing only while the pack charges)

LINK_IN_PIN = 1
LINK_OUT_PIN = 0
LINK_BAUD = 9600
LINK_INVERT = True
LINK_BACKEND = "pio"
LINK_UART_ID = None
LINK_PIO_SM_TX = 0
LINK_PIO_SM_RX = 1
LIGHT_SLEEP = True             # Begin / Between between frames (hal/sleep.py); End: BLE on, never
SLEEP_WAKE_MS = 2              # light sleep -> running (estimate)

LED_PIN = "LED"                # on-board LED behind the CYW43439
BUTTON_PIN = 14
BUTTON_ACTIVE_LOW = True

SWITCH_PINS = (6, 7, 8, 9, 10, 11, 12, 13)
SWITCH_ACTIVE_LOW = True

CURRENT_ADC = "ads1115"
ADS1115_I2C_ID = 0
ADS1115_SDA_PIN = 4
ADS1115_SCL_PIN = 5
ADS1115_I2C_HZ = 400000
ADS1115_ADDR = 0x48
CURRENT_CHANNELS = ((0, 1), (2, 3))
CURRENT_LOW_RANGE_A = 20
CURRENT_HIGH_RANGE_A = 500
CURRENT_LOW_UV_PER_A = 75000
CURRENT_HIGH_UV_PER_A = 3000
CURRENT_LOW_ZERO_UV = 1650000
CURRENT_HIGH_ZERO_UV = 1650000
CURRENT_ZERO_UV = 1650000

# End board: relay drivers (high = relay energised = allowed), relay LEDs, extended data output.
CHARGE_RELAY_PIN = 16
LOAD_RELAY_PIN = 17
RELAY_ACTIVE_HIGH = True
CHARGE_LED_PIN = 18
LOAD_LED_PIN = 19
EXTOUT_PIN = 20
EXTOUT_INVERT = True           # idle low on the connector, as the original End board
EXTOUT_BAUD = 9600
EXTOUT_UART_ID = None          # sent by a third PIO state machine
EXTOUT_PIO_SM = 2

# Gateway board (ground potential, docs/gateway.md): the End board's extended output comes in
# through an opto-isolator on GP1 (the cell boards' link-in pin), read by a PIO state machine;
# an MCP2515 CAN controller (8 MHz crystal, 3.3 V, SN65HVD230 transceiver) on SPI0.
EXTIN_PIN = 1
EXTIN_INVERT = False           # the opto stage inverts the End's idle-low line back to idle high
EXTIN_BACKEND = "pio"
EXTIN_PIO_SM = 1
CAN_SPI_ID = 0
CAN_SCK_PIN = 18
CAN_MOSI_PIN = 19
CAN_MISO_PIN = 16
CAN_CS_PIN = 17
CAN_SPI_HZ = 4000000
CAN_XTAL_HZ = 8000000
GW_PROFILE = "victron"         # victron, pylon (v1.2: Deye, Growatt, Sofar, GoodWe, MidNite), pylon13, sma
