"""The pack snapshot: what the End board knows about the chain after a frame (link -> brain).

Filled in place by the End board's link receiver, read by the pack brain, the extended output
and the app protocol. Preallocated for 255 cells; nothing here allocates after construction.
Units: mV, 0.1 degC (``_dc``), mA. Cell positions are 1-based from the Begin board.
"""
from array import array

from micropython import const

MAX_CELLS = const(255)


class CellStatus:
    """Status bits each board reports for its own cell (one byte per cell on the link)."""
    BALANCING = const(0x01)          # balance resistor on (any duty)
    TEMP_SENSOR_FAULT = const(0x02)  # NTC open/shorted: temperature is not data
    VOLT_SENSOR_FAULT = const(0x04)  # cell ADC stuck/out of range: voltage is not data
    DERATED = const(0x08)            # balancing derated or stopped because the board is hot
    UPSTREAM_LOST = const(0x10)      # this board had no valid frame from upstream and originated one
    NOT_CALIBRATED = const(0x20)     # cell ADC running on the board definition's nominal divider
    WATCHDOG_RESET = const(0x40)     # board restarted by its watchdog since the last frame
    STALE = const(0x80)              # (End side) detail not refreshed within the detail timeout


_NOT_DATA = CellStatus.VOLT_SENSOR_FAULT | CellStatus.STALE


class SensorFlags:
    """Per current sensor, set by the Begin board."""
    PRESENT = const(0x01)     # connected and read this cycle
    HIGH_RANGE = const(0x02)  # reading from the high (500 A) range
    FAULT = const(0x04)       # both ranges implausible / saturated


class PackSnapshot:
    """Everything the chain reported in its latest frame, plus the End board's view of it."""

    def __init__(self):
        self.cell_mv = array("H", bytes(2 * MAX_CELLS))
        self.cell_temp_dc = array("h", bytes(2 * MAX_CELLS))
        self.cell_status = bytearray(MAX_CELLS)
        self.cell_age = bytearray(MAX_CELLS)  # cycles since that cell's detail arrived (saturates)
        # The last complete chain (issue 22): what readers keep showing, flagged, while the
        # chain is not heard. Survives clear(): a link break is the same chain.
        self.held_mv = array("H", bytes(2 * MAX_CELLS))   # last trusted voltage per cell
        self.held_t = bytearray(MAX_CELLS)   # last valid temperature per cell, degC + 100 (0 = none)
        self.held_count = 0         # cell count of the last complete chain (0 = none since boot)
        self.held_pack_mv = 0       # last pack voltage with every cell trusted (0 = none)
        self.clear()

    def clear(self):
        """Back to "nothing known" (used at boot and when the link is lost)."""
        self.valid = False          # at least one good frame assembled since boot/clear
        self.comm_ok = False        # fresh, complete chain (End receiver decides; see link docs)
        self.seq = 0
        self.cell_count = 0         # boards that reported in this frame, End board included
        self.cells_min = 0          # range from the Begin board's switches 1-3
        self.cells_max = 0
        self.switch_vbal_mv = 0     # balance voltage from switches 4-8 (0 = balancing off)
        self.min_mv = 0
        self.min_mv_cell = 0
        self.max_mv = 0
        self.max_mv_cell = 0
        self.min_temp_dc = 0
        self.min_temp_cell = 0      # 0 = no valid temperature in the chain
        self.max_temp_dc = 0
        self.max_temp_cell = 0
        self.pack_mv = 0            # sum of the cell voltages
        self.any_balancing = False
        self.any_error = False      # some board reported a sensor fault or upstream loss
        self.volt_fault_at = 0      # 0, or the first position whose cell voltage is not data
        #                             (section A FAULT_AT: every frame, before the detail comes)
        self.break_position = 0     # 0 = intact; else position of the first board whose input failed
        self.link_good = 64         # End: slots with a good frame among the last 64 (link quality)
        self.link_flags = 0         # End: core.alarms LINK_QUALITY | LINK_NEVER_UP (roles/end.py)
        self.s1_ma = 0              # sensor 1 (charger side), one turn, zero-corrected, + = into pack
        self.s1_flags = 0
        self.s2_ma = 0              # sensor 2 (consumer side), one turn, zero-corrected, + = to loads
        self.s2_flags = 0
        for i in range(MAX_CELLS):
            self.cell_mv[i] = 0
            self.cell_temp_dc[i] = 0
            self.cell_status[i] = 0
            self.cell_age[i] = 255

    def trusted(self):
        """True when every cell of a fresh, complete chain is heard and its voltage is data:
        only then is there a pack voltage (never a partial sum)."""
        if not (self.valid and self.comm_ok) or self.cell_count <= 0 or self.volt_fault_at:
            return False
        st = self.cell_status
        for i in range(self.cell_count):
            if st[i] & _NOT_DATA:
                return False
        return True

    def hold(self):
        """After each cycle (End role): remember the chain while it is complete and fresh, so
        a link break never changes the cell count readers see nor sends invented zeros.
        Allocation-free; cells whose values are not data keep their last good value."""
        n = self.cell_count
        if not (self.valid and self.comm_ok) or n <= 0:
            return
        if n > MAX_CELLS:
            n = MAX_CELLS
        self.held_count = n
        st = self.cell_status
        total = 0
        ok = self.volt_fault_at == 0
        for i in range(n):
            s = st[i]
            if s & _NOT_DATA:
                ok = False
            else:
                mv = self.cell_mv[i]
                self.held_mv[i] = mv
                total += mv
            if not s & (CellStatus.TEMP_SENSOR_FAULT | CellStatus.STALE):
                t = (self.cell_temp_dc[i] + 1005) // 10
                self.held_t[i] = 1 if t < 1 else (255 if t > 255 else t)
        if ok:
            self.held_pack_mv = total
