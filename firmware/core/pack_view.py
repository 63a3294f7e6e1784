"""The pack view: what one snapshot says about the pack, digested once per cycle.

``PackView().read(snap)`` fills plain int/bool attributes from a ``core.snapshot.PackSnapshot``
(allocation-free); the pack brain's rules (core/rules.py, core/brain.py) decide on these, never
on the snapshot's arrays. A cell counts only when its detail is data: a STALE slot or a slot no
board has filled in makes the view incomplete (``stale``), a VOLT_SENSOR_FAULT cell is left out
of the voltages (``vfault``), a TEMP_SENSOR_FAULT cell out of the temperatures (``tfault``). The
section-A aggregates (updated in every frame) count as one more cell against both ends, so a
crossing anywhere in the chain acts within one frame at any chain length.

Attributes after ``read``: n (cells in the frame, at most MAX_CELLS), count / total_mv (cells
with a voltage and their sum), min_mv / max_mv (0 when none), temp_ok, min_t / max_t (0.1 degC),
vfault, tfault, stale, hot (a balancer derated), reset_at (1-based position of the first cell
whose board restarted, 0 = none), comm (a valid, complete frame with every detail fresh),
count_ok (the cell count inside the switches' range), counted (the frame came through the whole
chain: only then does the count mean anything), link_flags, break_position, switch_vbal_mv.
"""
from core import alarms as A
from core.sampling import CELL_MAX_MV, CELL_MIN_MV
from core.snapshot import MAX_CELLS, CellStatus


class PackView:
    def __init__(self):
        self.n = 0
        self.count = 0
        self.total_mv = 0
        self.min_mv = 0
        self.max_mv = 0
        self.temp_ok = False
        self.min_t = 0
        self.max_t = 0
        self.vfault = False
        self.tfault = False
        self.stale = False
        self.hot = False
        self.reset_at = 0
        self.comm = False
        self.count_ok = True
        self.counted = False
        self.link_flags = 0
        self.break_position = 0
        self.switch_vbal_mv = 0

    def read(self, snap):
        """Digest ``snap`` (allocation-free); returns self."""
        n = snap.cell_count
        if n > MAX_CELLS:
            n = MAX_CELLS
        vfault = False
        tfault = False
        stale = False
        hot = False
        count = 0
        total = 0
        min_mv = 0
        max_mv = 0
        temp_ok = False
        min_t = 0
        max_t = 0
        rst = 0
        if snap.valid:
            cell_mv = snap.cell_mv
            cell_t = snap.cell_temp_dc
            status = snap.cell_status
            min_mv = 0xFFFF
            for i in range(n):
                st = status[i]
                if st & CellStatus.STALE or (
                        not st & CellStatus.VOLT_SENSOR_FAULT
                        and not CELL_MIN_MV <= cell_mv[i] <= CELL_MAX_MV):
                    # not (yet) reported: detail never received or too old (STALE), or a slot
                    # no board has filled in (0 mV without VOLT_SENSOR_FAULT: a board forwards
                    # frames before its first measurement; every measured voltage outside
                    # 1.0..5.1 V carries VOLT_SENSOR_FAULT). Nothing of this cell is data.
                    stale = True
                    continue
                if st & CellStatus.WATCHDOG_RESET and not rst:
                    rst = i + 1
                if st & CellStatus.DERATED:
                    hot = True
                if st & CellStatus.VOLT_SENSOR_FAULT:
                    vfault = True
                else:
                    mv = cell_mv[i]
                    count += 1
                    total += mv
                    if mv < min_mv:
                        min_mv = mv
                    if mv > max_mv:
                        max_mv = mv
                if st & CellStatus.TEMP_SENSOR_FAULT:
                    tfault = True
                else:
                    t = cell_t[i]
                    if not temp_ok:
                        min_t = t
                        max_t = t
                        temp_ok = True
                    elif t < min_t:
                        min_t = t
                    elif t > max_t:
                        max_t = t
            if snap.volt_fault_at:
                # section A names a board whose cell voltage is not data (FAULT_AT, every
                # frame): the same sensor fault as in its detail, which reaches this board only
                # once per window rotation (8 cycles at 255 cells) - act now, not then
                vfault = True
            if count == 0:
                min_mv = 0
            else:
                # the aggregates of section A (boards with a sensor fault are left out of the
                # matching aggregate by the link, core/frame.py; position 0 = no board
                # contributed): each counts as one more cell, against both ends (a minimum
                # above the maximum cannot hide anything)
                agg = False
                if snap.min_mv_cell:
                    agg = True
                    v = snap.min_mv
                    if v < min_mv:
                        min_mv = v
                    if v > max_mv:
                        max_mv = v
                if snap.max_mv_cell:
                    agg = True
                    v = snap.max_mv
                    if v < min_mv:
                        min_mv = v
                    if v > max_mv:
                        max_mv = v
                if min_mv < CELL_MIN_MV or max_mv > CELL_MAX_MV:
                    # no measured cell gives such an aggregate (an implausible reading carries
                    # VOLT_SENSOR_FAULT and is left out): not data, as a slot nobody filled
                    stale = True
                if snap.min_temp_cell and snap.max_temp_cell:
                    if temp_ok:            # detail without any valid temperature stays "none"
                        v = snap.min_temp_dc
                        if v < min_t:
                            min_t = v
                        if v > max_t:
                            max_t = v
                        v = snap.max_temp_dc
                        if v < min_t:
                            min_t = v
                        if v > max_t:
                            max_t = v
                elif agg or snap.min_temp_cell or snap.max_temp_cell:
                    temp_ok = False        # this frame: no valid temperature in the chain
        self.n = n
        self.count = count
        self.total_mv = total
        self.min_mv = min_mv
        self.max_mv = max_mv
        self.temp_ok = temp_ok
        self.min_t = min_t
        self.max_t = max_t
        self.vfault = vfault
        self.tfault = tfault
        self.stale = stale
        self.hot = hot
        self.reset_at = rst
        # complete: every cell's detail is fresh; until then only COMM_LOST (no cell alarms)
        self.comm = snap.valid and snap.comm_ok and n > 0 and not stale
        self.counted = snap.valid and snap.comm_ok
        self.count_ok = not (snap.cells_min > 0 and (n < snap.cells_min or n > snap.cells_max))
        self.link_flags = snap.link_flags
        self.break_position = snap.break_position
        self.switch_vbal_mv = snap.switch_vbal_mv
        return self

    def status_alarms(self):
        """The alarm bits the view alone decides: COMM_LOST, CELL_COUNT_MISMATCH (only for a
        frame that came through the whole chain: one started below a break, or on a link that
        never came up, does not count the chain), the End link's LINK_QUALITY / LINK_NEVER_UP,
        VOLT_SENSOR_FAULT, TEMP_SENSOR_FAULT, BALANCE_HOT."""
        al = 0
        if not self.comm:
            al |= A.COMM_LOST
        if not self.count_ok and self.counted:
            al |= A.CELL_COUNT_MISMATCH
        al |= self.link_flags & (A.LINK_QUALITY | A.LINK_NEVER_UP)
        if self.vfault:
            al |= A.VOLT_SENSOR_FAULT
        if self.tfault:
            al |= A.TEMP_SENSOR_FAULT
        if self.hot:
            al |= A.BALANCE_HOT
        return al

    def data_ok(self):
        """The relays may act on this view: complete, the count inside the switches' range, no
        cell voltage sensor fault, at least one cell voltage."""
        return self.comm and self.count_ok and not self.vfault and self.count > 0
