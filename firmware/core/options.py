"""Begin board option switches: cell-count range (switches 1-3) and balance voltage (4-8).

Switch 1 is the most significant bit of each group, exactly as the 123\\SmartBMS manual's table.
The switch word passed in has bit 7 = switch 1 ... bit 0 = switch 8 (1 = ON).
"""
from micropython import const

# (lowest, highest) cell count for switch code 0..7 (switches 1-3, switch 1 = MSB)
CELL_RANGES = (
    (2, 4), (5, 8), (9, 16), (17, 25), (26, 40), (41, 80), (81, 150), (151, 255),
)

NO_BALANCING = const(0)
_BALANCE_BASE_MV = const(1800)
_BALANCE_STEP_MV = const(100)


def switch_word(states):
    """Build the switch word from 8 booleans, switch 1 first (True = ON)."""
    word = 0
    for on in states:
        word = (word << 1) | (1 if on else 0)
    return word & 0xFF


def cell_range_code(word):
    """Switches 1-3 as a number 0..7."""
    return (word >> 5) & 0x07


def balance_code(word):
    """Switches 4-8 as a number 0..31 (0 = no balancing)."""
    return word & 0x1F


def cell_range(word):
    """(lowest, highest) number of cells selected by switches 1-3."""
    return CELL_RANGES[cell_range_code(word)]


def balance_mv(word):
    """Balance voltage in mV from switches 4-8; 0 (NO_BALANCING) when all are off.

    Code 1 = 1.9 V ... code 31 = 4.9 V, i.e. 1.8 V + 0.1 V x code.
    """
    code = balance_code(word)
    if code == 0:
        return NO_BALANCING
    return _BALANCE_BASE_MV + _BALANCE_STEP_MV * code


def word_for(cells_code, balance_mv_wanted):
    """Inverse of the decoders (for tests, the simulator and the docs): switch word for a range
    code and a balance voltage in mV (0 = no balancing). Raises ValueError when not settable."""
    if not 0 <= cells_code <= 7:
        raise ValueError("cell range code 0..7")
    if balance_mv_wanted == NO_BALANCING:
        code = 0
    else:
        code = (balance_mv_wanted - _BALANCE_BASE_MV) // _BALANCE_STEP_MV
        if not 1 <= code <= 31 or _BALANCE_BASE_MV + _BALANCE_STEP_MV * code != balance_mv_wanted:
            raise ValueError("balance voltage 1900..4900 mV in 100 mV steps, or 0")
    return (cells_code << 5) | code


def range_code_for_cells(cells):
    """Switch code (0..7) whose range holds this many cells; ValueError outside 2..255."""
    for code in range(8):
        lo, hi = CELL_RANGES[code]
        if lo <= cells <= hi:
            return code
    raise ValueError("cells 2..255")
