"""Raspberry Pi Pico W (RP2040 + CYW43439 with Bluetooth LE): Begin, Between or End board.
Data only, no logic.

Same analog front end and link as the Pico. On the Pico W GP23/24/25/29 belong to the radio
module, so the on-board LED is the pin named "LED" (driven through the radio chip).
See docs/wiring.md.
"""

NAME = "pico_w"
TITLE = "Raspberry Pi Pico W (RP2040 + BLE)"
CPU = "rp2040"
MPY_ARCH = "armv6m"
ROLES = ("begin", "between", "end")
HAS_BLE = True
WDT_TIMEOUT_MS = 5000

CELL_ADC_PIN = 26              # ADC0, cell through a 2:1 divider
CELL_DIVIDER_NUM = 2
CELL_DIVIDER_DEN = 1
ADC_READ = "read_u16"
ADC_VREF_UV = 3300000

NTC_ADC_PIN = 27               # ADC1
NTC_BETA = 3950
NTC_R25_OHM = 10000
NTC_SERIES_OHM = 10000
NTC_SUPPLY_UV = 3300000

BALANCE_PIN = 15
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 3000        # never balance below (LiFePO4; NMC/NCA packs 3700, LTO 2400)

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
