"""Runs first at every start: drive the balance, relay and LED pins of this image's role to their
safe level.

Only the role's own pins are touched: a board is one role at a time and the roles share GPIOs
(on the ESP32 DevKitC the End relay pins are the Begin board's current-sensor inputs), so
driving another role's outputs could load this role's inputs. ``IMAGE_ROLE`` is baked in by
tools/build_images.py; a boot.py copied by hand (``None``) makes only the pins every role has
safe (balance, LED). Nothing else happens here (main.py starts the role). A board definition
without a pin (None) is skipped; anything unexpected is printed, never raised, so main.py still
runs.
"""
IMAGE_ROLE = None  # set per image by tools/build_images.py


def safe_levels(board, role):
    """(attribute name, level) of every output the role drives, at its safe level."""
    if role == "gateway":                  # no balancer, no relays (its CAN controller starts silent)
        return [("LED_PIN", 0)]
    levels = [("BALANCE_PIN", 0),          # balance resistor MOSFET off
              ("LED_PIN", 0)]
    if role == "end":
        relay_off = 0 if getattr(board, "RELAY_ACTIVE_HIGH", True) else 1
        levels += [("CHARGE_RELAY_PIN", relay_off), ("LOAD_RELAY_PIN", relay_off),
                   ("CHARGE_LED_PIN", 0), ("LOAD_LED_PIN", 0)]
    return levels


def _safe_outputs():
    import board  # the board definition copied into the image as board.py
    from machine import Pin

    for name, level in safe_levels(board, IMAGE_ROLE):
        pin = getattr(board, name, None)
        if pin is not None:
            Pin(pin, Pin.OUT, value=level)


try:
    _safe_outputs()
except Exception as e:  # boot must never stop the board from starting
    print("boot: safe outputs failed:", e)
