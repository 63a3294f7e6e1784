"""Begin board: the calibration button zeroes the current sensors (saved in the Begin board's
data folder, survives a restart), refused while a current flows. Both interpreters."""
from core import current
from core.current import SensorPair
from roles import begin
from fakes import Cell
from support import tmpdir


class Board:
    NAME = "test"
    LINK_CYCLE_MS = 1000
    CURRENT_LOW_RANGE_A = 20
    CURRENT_HIGH_RANGE_A = 500
    CURRENT_LOW_UV_PER_A = 75000
    CURRENT_HIGH_UV_PER_A = 3000
    CURRENT_LOW_ZERO_UV = 1650000
    CURRENT_HIGH_ZERO_UV = 1650000


class Hw:
    def __init__(self, data_dir, offset_uv=0, ma=0):
        self.data_dir = data_dir
        self.link_tx = None
        self.offset_uv = offset_uv
        self.ma = ma

    def read_switches(self):
        return 0x50   # 9-16 cells, 3.4 V

    def read_current_uv(self, sensor, high_range):
        if high_range:
            return 1650000 + self.ma * 3 + self.offset_uv // 25
        return 1650000 + self.ma * 75 + self.offset_uv


def test_button_zeroes_sensors_and_survives_restart():
    d = tmpdir()
    hw = Hw(d, offset_uv=15000)          # 200 mA of offset on the low range
    role = begin.make(hw, Board(), cell=Cell())
    role.cycle(1000)
    assert role.pair.s1_ma != 0
    role.cell.long = True
    role.tick(100)
    assert role.cell.confirmed == 1      # fast flash: done
    role.cycle(1000)
    assert -50 <= role.pair.s1_ma <= 50
    # restart: the zero comes back from the data folder
    again = begin.make(hw, Board(), cell=Cell())
    again.cycle(1000)
    assert -50 <= again.pair.s1_ma <= 50
    import os
    assert current.zero_path(d).split("/")[-1] in os.listdir(d)


def test_button_refused_while_current_flows():
    d = tmpdir()
    hw = Hw(d, ma=8000)                  # 8 A flowing: not a zero
    role = begin.make(hw, Board(), cell=Cell(), pair=SensorPair(Board()))
    role.cycle(1000)
    role.cell.long = True
    role.tick(100)
    assert role.cell.confirmed == 0
    assert not role.zero_current()
