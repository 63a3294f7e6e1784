"""Espressif ESP32-DevKitC (ESP32-WROOM-32, Bluetooth LE): Begin, Between or End board.
Data only, no logic.

Analog inputs only on ADC1 (GPIO32..39): ADC2 cannot be used while the radio is on. Avoided:
strapping pins 0, 2, 5, 12, 15; flash pins 6..11; UART0 (REPL) 1 and 3. GPIO34..39 are input-only
without pull-ups, used here as ADC inputs and as the extended output UART's unused RX. The
Begin switches use GPIO16/17, which a WROVER module (PSRAM) reserves: use a WROOM-32 DevKitC for
the Begin board. A board is one role at a time, so Begin inputs and End outputs share GPIOs
(boot.py drives only the pins of the image's own role).

Outputs that switch power (relays, balance MOSFET) sit on pins that have no pull-up and do no
boot-time activity: the JTAG pins 12..15 do (GPIO14 comes out of reset as an input with its
pull-up on, so a relay driver on it sees "on" until boot.py runs). GPIO25/32/33 float at reset
(RTC pads, input disabled): their driver inputs need the external pull-down listed in
``EXTERNAL_PULL_DOWN_PINS`` (100 kOhm to GND, docs/wiring.md). The pin check is
host_tests/test_board_defs.py.
"""

NAME = "esp32_devkitc"
TITLE = "ESP32-DevKitC (ESP32-WROOM-32)"
CPU = "esp32"
MPY_ARCH = "xtensawin"
ROLES = ("begin", "between", "end")
HAS_BLE = True
WDT_TIMEOUT_MS = 5000

# Cell through a 5:2 divider (e.g. 150k/100k): 1.5..5.0 V -> 0.6..2.0 V, inside the calibrated
# span of the 11 dB attenuation (about 0.15..2.45 V).
CELL_ADC_PIN = 36              # SENSOR_VP, ADC1_CH0
CELL_DIVIDER_NUM = 5
CELL_DIVIDER_DEN = 2
ADC_READ = "read_uv"           # ADC.read_uv(): factory-calibrated microvolts
ADC_VREF_UV = None

NTC_ADC_PIN = 39               # SENSOR_VN, ADC1_CH3
NTC_BETA = 3950
NTC_R25_OHM = 10000
NTC_SERIES_OHM = 10000
NTC_SUPPLY_UV = 2500000        # NTC divider fed from a 2.5 V reference, inside the ADC span

BALANCE_PIN = 25
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 3000        # never balance below (LiFePO4; NMC/NCA packs 3700, LTO 2400)

LINK_IN_PIN = 27
LINK_OUT_PIN = 26
LINK_BAUD = 9600
LINK_INVERT = True
LINK_BACKEND = "uart"          # UART peripheral: ESP32 pin interrupts are too slow for bit timing
LINK_UART_ID = 2
LIGHT_SLEEP = True             # Begin / Between between frames (hal/sleep.py); End: BLE on, never
LIGHT_SLEEP_WAKE_ON_LINK = True   # esp32.wake_on_ext0 on LINK_IN (GPIO27 = RTC_GPIO17): an early
#                                frame's start bit wakes the board (its first characters are lost)
SLEEP_WAKE_MS = 2              # light sleep -> running (estimate)

LED_PIN = 23                   # the DevKitC has no user LED: external LED + resistor to GND
BUTTON_PIN = 4                 # external button to GND (the BOOT button is strapping pin 0)
BUTTON_ACTIVE_LOW = True

SWITCH_PINS = (13, 14, 16, 17, 18, 19, 21, 22)
SWITCH_ACTIVE_LOW = True

# Current sensors straight on ADC1 inputs. Signal conditioned to 1.25 V +- 1.0 V at the pin.
CURRENT_ADC = "adc"
CURRENT_CHANNELS = ((34, 35), (32, 33))   # ((s1 low, s1 high), (s2 low, s2 high)) GPIOs, ADC1
CURRENT_LOW_RANGE_A = 20
CURRENT_HIGH_RANGE_A = 500
CURRENT_LOW_UV_PER_A = 50000
CURRENT_HIGH_UV_PER_A = 2000
CURRENT_LOW_ZERO_UV = 1250000
CURRENT_HIGH_ZERO_UV = 1250000
CURRENT_ZERO_UV = 1250000

# End board (shares GPIOs with the Begin current inputs: one role per board). GPIO32/33 float
# at reset (no pull, no boot activity): 100 kOhm pull-downs on the relay driver inputs.
CHARGE_RELAY_PIN = 32
LOAD_RELAY_PIN = 33
RELAY_ACTIVE_HIGH = True
CHARGE_LED_PIN = 18
LOAD_LED_PIN = 19
EXTOUT_PIN = 21
EXTOUT_INVERT = True
EXTOUT_BAUD = 9600
EXTOUT_UART_ID = 1
EXTOUT_UART_RX_PIN = 35        # UART1's unused RX: input-only, free on the End board (not GPIO9)

# Pins that float at reset and drive power switches: the wiring has a pull-down on each.
EXTERNAL_PULL_DOWN_PINS = (25, 32, 33)
