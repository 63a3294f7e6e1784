"""Espressif ESP32-DevKitC (ESP32-WROOM-32, Bluetooth LE): Begin, Between, End or gateway board.
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
ROLES = ("begin", "between", "end", "gateway")
HAS_BLE = True
WDT_TIMEOUT_MS = 5000

# Cell through a 5:2 divider (e.g. 150k/100k): 1.5..5.0 V -> 0.6..2.0 V, inside the calibrated
# span of the 11 dB attenuation (about 0.15..2.45 V).
CELL_ADC_PIN = 36              # SENSOR_VP, ADC1_CH0
CELL_DIVIDER_NUM = 5
CELL_DIVIDER_DEN = 2
ADC_READ = "read_uv"           # ADC.read_uv(): factory-calibrated microvolts
ADC_VREF_UV = None

# Input self-test (core/probe.py): GPIO36 has no pull resistors, so a 100 kOhm test resistor
# from the ADC node to CELL_PROBE_PIN, driven low every CELL_PROBE_EVERY cycles (else an input),
# loads the node (the divider's source resistance against 100 kOhm): a live input reads about
# 0.67 of its unloaded value, a frozen one does not move -> VOLT_SENSOR_FAULT.
CELL_PROBE_EVERY = 2
CELL_PROBE_PIN = 5             # strapping pin (SDIO timing, sampled at reset only): free otherwise
CELL_PROBE_MIN_PERMILLE = 300
CELL_PROBE_MAX_PERMILLE = 900

NTC_ADC_PIN = 39               # SENSOR_VN, ADC1_CH3
NTC_BETA = 3950
NTC_R25_OHM = 10000
NTC_SERIES_OHM = 10000
NTC_SUPPLY_UV = 2500000        # NTC divider fed from a 2.5 V reference, inside the ADC span

# NTC input self-test: a second 100 kOhm test resistor from the NTC node to the same test pin
# (live: 0.91 (-20 degC) .. 0.99 (80 degC) of its value; frozen: 1.0).
NTC_PROBE_EVERY = 2
NTC_PROBE_PIN = 5
NTC_PROBE_MIN_PERMILLE = 500
NTC_PROBE_MAX_PERMILLE = 996

BALANCE_PIN = 25
BALANCE_PWM_HZ = 1000
BALANCE_FLOOR_MV = 1800        # absolute floor, below every balance switch value (the rule that
#                                protects is the End's consent: balancing only while the pack charges)

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

# Gateway board (ground potential, docs/gateway.md): the End board's extended output comes in
# through an opto-isolator on GPIO27 (the cell boards' link-in pin) to UART2 (its unused TX on
# GPIO26); an MCP2515 CAN controller (8 MHz crystal, 3.3 V, SN65HVD230 transceiver) on SPI2
# routed through the GPIO matrix (MISO on input-only GPIO34; CS on GPIO22, not strapping pin 5).
EXTIN_PIN = 27
EXTIN_INVERT = False           # the opto stage inverts the End's idle-low line back to idle high
EXTIN_BACKEND = "uart"
EXTIN_UART_ID = 2
EXTIN_UART_TX_PIN = 26
CAN_SPI_ID = 2
CAN_SCK_PIN = 18
CAN_MOSI_PIN = 19
CAN_MISO_PIN = 34
CAN_CS_PIN = 22
CAN_SPI_HZ = 4000000
CAN_XTAL_HZ = 8000000
GW_PROFILE = "victron"         # victron, pylon (v1.2: Deye, Growatt, Sofar, GoodWe, MidNite), pylon13, sma
