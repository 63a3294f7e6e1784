"""Which way the real link code drives and reads the pins, for the virtual pack's wire.

``link_polarity(board_def)`` -> (tx_invert, rx_invert): builds the board's transmitter and
receiver with the real ``hal/link.py`` ``make_tx`` / ``make_rx`` on small recording stand-ins
for ``machine`` and ``rp2`` and reads back what they configured (the UART's INV_TX / INV_RX
flags, the PIO program chosen, the soft backend's decoder polarity). So the wire follows the
firmware: when the firmware changes its polarity, the virtual pack sees it.
"""
from sim import paths  # noqa: F401


class _Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, pin_id, mode=0, pull=None, value=1):
        self.id = pin_id
        self._v = value

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v

    def irq(self, handler=None, trigger=0, hard=False):
        pass


class _Uart:
    INV_TX = 1
    INV_RX = 2
    made = []

    def __init__(self, uart_id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 invert=0, txbuf=0, rxbuf=0):
        self.invert = invert
        _Uart.made.append(self)

    def write(self, buf):
        return len(buf)

    def any(self):
        return 0

    def readinto(self, buf, n=None):
        return 0

    def txdone(self):
        return True


class _Timer:
    def __init__(self, timer_id=-1, **kw):
        pass

    def init(self, **kw):
        pass

    def deinit(self):
        pass


class _Machine:
    Pin = _Pin
    UART = _Uart
    Timer = _Timer


class _Sm:
    def __init__(self, sm_id, prog, **kw):
        self.prog = prog

    def active(self, v=None):
        return 1

    def irq(self, handler=None):
        pass

    def put(self, v):
        pass

    def tx_fifo(self):
        return 0

    def rx_fifo(self):
        return 0


class _Pio:
    OUT_HIGH = 1
    OUT_LOW = 0
    SHIFT_RIGHT = 1
    SHIFT_LEFT = 0
    JOIN_TX = 1
    JOIN_RX = 2


class _Rp2:
    PIO = _Pio
    StateMachine = _Sm

    @staticmethod
    def asm_pio(**kw):
        return lambda fn: fn


class _Time:
    @staticmethod
    def ticks_us():
        return 0

    @staticmethod
    def ticks_diff(a, b):
        return a - b


def _inverts(obj, direction):
    from hal import link_pio
    sm = getattr(obj, "sm", None)
    if sm is not None:
        return sm.prog in (link_pio._tx_inverted, link_pio._rx_inverted)
    uart = getattr(obj, "uart", None)
    if uart is not None:
        return bool(uart.invert & (_Uart.INV_TX if direction == "tx" else _Uart.INV_RX))
    coder = getattr(obj, "bits", None) or getattr(obj, "dec", None)
    if coder is not None:
        return bool(coder.invert)
    raise ValueError("cannot tell the polarity of %r" % (obj,))


def link_polarity(board_def):
    """(tx_invert, rx_invert) as the firmware's hal/link.py configures this board's link."""
    from hal import link
    m = _Machine()
    rp2 = _Rp2()
    tx = link.make_tx(board_def, board_def.LINK_OUT_PIN, board_def.LINK_INVERT, board_def.LINK_BAUD,
                      machine=m, rp2=rp2)
    rx = link.make_rx(board_def, machine=m, rp2=rp2, time=_Time())
    return _inverts(tx, "tx"), _inverts(rx, "rx")
