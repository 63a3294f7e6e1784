"""Option switches against the manual's table (runs on CPython and MicroPython)."""
from core import options


def test_cell_ranges_match_manual_table():
    # switches 1,2,3 as (s1, s2, s3) -> range, from the manual
    table = [
        ((0, 0, 0), (2, 4)), ((0, 0, 1), (5, 8)), ((0, 1, 0), (9, 16)), ((0, 1, 1), (17, 25)),
        ((1, 0, 0), (26, 40)), ((1, 0, 1), (41, 80)), ((1, 1, 0), (81, 150)), ((1, 1, 1), (151, 255)),
    ]
    for (s1, s2, s3), expected in table:
        word = options.switch_word([s1, s2, s3, 0, 0, 0, 0, 0])
        assert options.cell_range(word) == expected, (s1, s2, s3)


def test_balance_voltage_every_code():
    assert options.balance_mv(options.switch_word([0] * 8)) == options.NO_BALANCING
    # 4.0 V (for NMC): ON OFF ON ON OFF
    assert options.balance_mv(options.switch_word([0, 0, 0, 1, 0, 1, 1, 0])) == 4000
    # 3.4 V (for LiFePO4): ON OFF OFF OFF OFF
    assert options.balance_mv(options.switch_word([0, 0, 0, 1, 0, 0, 0, 0])) == 3400
    # 2.6 V (for LTO): OFF ON OFF OFF OFF
    assert options.balance_mv(options.switch_word([0, 0, 0, 0, 1, 0, 0, 0])) == 2600
    assert options.balance_mv(options.switch_word([0, 0, 0, 0, 0, 0, 0, 1])) == 1900
    assert options.balance_mv(options.switch_word([1, 1, 1, 1, 1, 1, 1, 1])) == 4900
    mvs = [options.balance_mv(code) for code in range(1, 32)]
    assert mvs == list(range(1900, 5000, 100))


def test_groups_are_independent():
    for cells_code in range(8):
        for bal in range(32):
            word = (cells_code << 5) | bal
            assert options.cell_range(word) == options.CELL_RANGES[cells_code]
            assert options.balance_mv(word) == (0 if bal == 0 else 1800 + 100 * bal)


def test_word_for_is_inverse():
    for cells_code in range(8):
        for mv in [0] + list(range(1900, 5000, 100)):
            word = options.word_for(cells_code, mv)
            assert options.balance_mv(word) == mv
            assert options.cell_range_code(word) == cells_code


def test_range_code_for_cells():
    assert options.range_code_for_cells(4) == 0
    assert options.range_code_for_cells(16) == 2
    assert options.range_code_for_cells(255) == 7
    for bad in (0, 1, 256):
        try:
            options.range_code_for_cells(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
