"""Runs first at every start: drive the balance, relay and LED pins to their safe level.

Nothing else happens here (main.py starts the role). A board definition without a pin
(None) is skipped; anything unexpected is printed, never raised, so main.py still runs.
"""


def _safe_outputs():
    import board  # the board definition copied into the image as board.py
    from machine import Pin

    relay_off = 0 if getattr(board, "RELAY_ACTIVE_HIGH", True) else 1
    levels = (
        ("BALANCE_PIN", 0),          # balance resistor MOSFET off
        ("CHARGE_RELAY_PIN", relay_off),
        ("LOAD_RELAY_PIN", relay_off),
        ("LED_PIN", 0),
        ("CHARGE_LED_PIN", 0),
        ("LOAD_LED_PIN", 0),
    )
    for name, level in levels:
        pin = getattr(board, name, None)
        if pin is not None:
            Pin(pin, Pin.OUT, value=level)


try:
    _safe_outputs()
except Exception as e:  # boot must never stop the board from starting
    print("boot: safe outputs failed:", e)
