"""The gateway board's ``hw``: the End board's extended output coming in (through the
isolator, docs/gateway.md "Wiring"), an MCP2515 CAN controller on SPI, the info LED and the
watchdog. Built by ``hal.board.make_hw(board_def, "gateway")``; machine / rp2 / time are
injected by tests.

Board definition constants (board_defs/pico_w.py, board_defs/esp32_devkitc.py):
CAN_SPI_ID, CAN_SCK_PIN, CAN_MOSI_PIN, CAN_MISO_PIN, CAN_CS_PIN, CAN_SPI_HZ, CAN_XTAL_HZ;
EXTIN_PIN, EXTIN_INVERT, EXTIN_BACKEND ("pio": EXTIN_PIO_SM; "uart": EXTIN_UART_ID and
EXTIN_UART_TX_PIN, a free pin for the UART's unused TX); GW_PROFILE and GW_* law tunables.
"""
from micropython import const

from hal import mcp2515
from hal.board import Hw, ensure_dir, reset_cause_name

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any  # under TYPE_CHECKING: never imported on a board

EXTIN_BAUD = const(9600)
_GAP_BITS = const(30)       # hal.link.GAP_BITS: an idle gap ends a packet


class GatewayHw(Hw):
    def __init__(self, board_def, data_dir):
        Hw.__init__(self, board_def, "gateway", data_dir)
        self.can: "Any" = None
        self.extin_rx: "Any" = None
        self.mqtt: "Any" = None       # umqtt.simple client (hal/gw_net.py) or None: MQTT off

    def safe(self):
        """Nothing on the bus (the inverter's own timeout takes over), LED off."""
        self.set_led(False)
        can = self.can
        if can is not None:
            try:
                can.stop()
            except OSError as e:
                print("gateway: CAN stop failed:", e)


def make(board_def, data_dir, machine, rp2=None, time=None):
    bd = board_def
    if time is None:
        import time as _time
        time = _time
    Pin = machine.Pin
    hw = GatewayHw(bd, data_dir)
    ensure_dir(data_dir)
    hw._reset_cause = reset_cause_name(machine, data_dir)
    hw._led = Pin(bd.LED_PIN, Pin.OUT, value=0)
    timeout_ms = bd.WDT_TIMEOUT_MS
    hw._wdt_factory = lambda: machine.WDT(timeout=timeout_ms)

    cs = Pin(bd.CAN_CS_PIN, Pin.OUT, value=1)
    spi = machine.SPI(bd.CAN_SPI_ID, baudrate=bd.CAN_SPI_HZ, polarity=0, phase=0,
                      sck=Pin(bd.CAN_SCK_PIN), mosi=Pin(bd.CAN_MOSI_PIN), miso=Pin(bd.CAN_MISO_PIN))
    hw.can = mcp2515.MCP2515(spi, cs, time.sleep_ms, bd.CAN_XTAL_HZ)

    invert = bool(bd.EXTIN_INVERT)
    if bd.EXTIN_BACKEND == "uart":
        from hal import link_uart  # image: esp32
        uart = link_uart.make_uart(machine, bd.EXTIN_UART_ID, EXTIN_BAUD, tx=bd.EXTIN_UART_TX_PIN,
                                   rx=bd.EXTIN_PIN, invert=False, rx_invert=invert)
        hw.extin_rx = link_uart.UartRx(uart, EXTIN_BAUD, _GAP_BITS, ticks_us=time.ticks_us,
                                       ticks_diff=time.ticks_diff)
    else:
        from hal import link_pio  # image: rp2040
        hw.extin_rx = link_pio.PioRx(bd.EXTIN_PIO_SM, Pin(bd.EXTIN_PIN, Pin.IN), invert, EXTIN_BAUD, _GAP_BITS,
                                     rp2=rp2, ticks_us=time.ticks_us, ticks_diff=time.ticks_diff)
    if getattr(bd, "GW_MQTT_BROKER", None):
        from hal import gw_net  # image: gateway
        hw.mqtt = gw_net.make_mqtt(bd)
    return hw
