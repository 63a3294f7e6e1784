"""Link transmitters and receivers from the board definition (docs/link-protocol.md).

``make_tx(board_def, pin, invert, baud)`` -> transmitter or None when ``pin`` is None;
``make_rx(board_def)`` -> receiver on LINK_IN_PIN, with the polarity the opto stage leaves
(``rx_invert``: the transmitter inverts, the opto inverts back, the receiver does not). Both take ``machine=`` and ``rp2=``, and
both ``time=`` (anything with ticks_us / ticks_diff) - injected by tests, imported lazily
otherwise - and build the Pin / Timer / UART /
StateMachine objects the backend classes are given - nothing is touched at import time.
The backend is board_def.LINK_BACKEND: "pio" (RP2040 state machines, hal/link_pio.py),
"uart" (hardware UART, hal/link_uart.py) or "soft" (timer TX + pin-edge IRQ RX,
hal/link_soft.py, low baud only). The extended data output
uses the same transmitter classes (board_def.EXTOUT_UART_ID picks a UART for it when set).

Transmitter: ``write_byte(b)`` -> bool (False = buffer full, byte dropped), ``write(buf, n)``
(a burst sent back to back), ``pending()`` (characters not yet on the wire).
Receiver: ``read()`` -> byte 0..255, or core.codec.FRAMING / GAP / NONE;
``set_handler(fn)``: fn() is scheduled (micropython.schedule) when characters arrive, so a
role's ``poll`` runs within a character time instead of at the next loop wake-up.

Start-up: a board whose receiver runs before its role listens (the End loads its settings
first) sees a frame's tail, and a PIO state machine whose FIFO filled meanwhile resumes
mid-character. ``PioRx.set_handler`` then drops what piled up and hunts: characters that follow
by less than a gap (GAP_BITS of idle line) are dropped unseen (``dropped``), not counted as a cut
or bad frame; the first character after a gap starts a frame. A board started on an idle line
loses nothing (issue 19: the End's boot frame on the emulated chip). The UART and soft receivers
do not hunt yet: a board of theirs that starts mid-frame counts one bad or cut frame.
"""
GAP_BITS = 30        # idle bit times after a character that end a frame (core.codec.Decoder)
OPTO_INVERTS = True  # the documented opto stage (docs/wiring.md): LED on = transistor pulls IN low


def rx_invert(board_def):
    """Polarity LINK_IN sees through the opto stage: the upstream board drives LINK_OUT inverted
    when LINK_INVERT (idle low: opto LED off), the opto inverts once more, so the receiver sees
    ordinary UART polarity (idle high) and must not invert again. ``LINK_OPTO_INVERTS = False``
    in a board definition describes a non-inverting coupler (then the receiver inverts)."""
    return bool(board_def.LINK_INVERT) != bool(getattr(board_def, "LINK_OPTO_INVERTS", OPTO_INVERTS))


def _backend(board_def):
    return getattr(board_def, "LINK_BACKEND", "soft")


def _machine(machine):
    if machine is None:
        import machine as _m
        return _m
    return machine


def make_tx(board_def, pin, invert, baud, machine=None, rp2=None, time=None):
    if pin is None:
        return None
    ticks_us = ticks_diff = ticks_add = None
    if time is not None:
        ticks_us = time.ticks_us
        ticks_diff = time.ticks_diff
        ticks_add = getattr(time, "ticks_add", None)
    kind = _backend(board_def)
    is_extout = pin == getattr(board_def, "EXTOUT_PIN", None) and pin != board_def.LINK_OUT_PIN
    uart_id = getattr(board_def, "EXTOUT_UART_ID" if is_extout else "LINK_UART_ID", None)
    machine = _machine(machine)
    if uart_id is not None and (kind == "uart" or is_extout):
        from hal import link_uart
        # the unused RX of this UART goes to a pin the board definition names, never the default
        rx = getattr(board_def, "EXTOUT_UART_RX_PIN", None) if is_extout else board_def.LINK_IN_PIN
        rx_inv = invert if is_extout else rx_invert(board_def)   # same pair as make_rx builds
        return link_uart.UartTx(link_uart.make_uart(machine, uart_id, baud, tx=pin, rx=rx, invert=invert,
                                                    rx_invert=rx_inv),
                                baud, ticks_us=ticks_us, ticks_diff=ticks_diff, ticks_add=ticks_add)
    p = machine.Pin(pin, machine.Pin.OUT, value=0 if invert else 1)
    if kind == "pio":
        from hal import link_pio
        sm_id = getattr(board_def, "EXTOUT_PIO_SM" if is_extout else "LINK_PIO_SM_TX", 2 if is_extout else 0)
        return link_pio.PioTx(sm_id, p, invert, baud, rp2=rp2, ticks_us=ticks_us, ticks_diff=ticks_diff)
    from hal import link_soft
    timer = machine.Timer(getattr(board_def, "LINK_SOFT_TIMER_ID", -1))
    return link_soft.SoftTx(p, timer, invert, baud)


def make_rx(board_def, machine=None, rp2=None, time=None):
    kind = _backend(board_def)
    pin = board_def.LINK_IN_PIN
    invert = rx_invert(board_def)
    baud = board_def.LINK_BAUD
    machine = _machine(machine)
    if time is None:
        import time as _time
        time = _time
    ticks_us = time.ticks_us
    ticks_diff = time.ticks_diff
    if kind == "uart":
        from hal import link_uart
        return link_uart.UartRx(link_uart.make_uart(machine, board_def.LINK_UART_ID, baud,
                                                    tx=board_def.LINK_OUT_PIN, rx=pin,
                                                    invert=board_def.LINK_INVERT, rx_invert=invert),
                                baud, GAP_BITS,
                                ticks_us=ticks_us, ticks_diff=ticks_diff)
    p = machine.Pin(pin, machine.Pin.IN)
    if kind == "pio":
        from hal import link_pio
        return link_pio.PioRx(getattr(board_def, "LINK_PIO_SM_RX", 1), p, invert, baud, GAP_BITS, rp2=rp2,
                              ticks_us=ticks_us, ticks_diff=ticks_diff)
    from hal import link_soft
    return link_soft.SoftRx(p, invert, baud, GAP_BITS, ticks_us=ticks_us, ticks_diff=ticks_diff)
