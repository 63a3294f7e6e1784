"""Does every cell reading follow the pack's current? The step-response check of the pack brain.

A frozen ADC or a frozen input that still shows noise passes the cell board's own checks; on a
current step every real cell's voltage moves by I x R, a frozen reading does not. ``FollowCheck``
keeps two cycles of history per cell (preallocated for MAX_CELLS, allocation-free per cycle);
``update(cell_mv, cell_age, n, current_ma)`` returns True while any cell is flagged (the pack
brain counts it as an untrusted voltage: CELL_NOT_FOLLOWING + VOLT_SENSOR_FAULT). The cell
boards' input self-test (core/probe.py) finds the same fault at any current; this check is the
End's independent second opinion. See docs/pack-brain.md.
"""
from array import array

from micropython import const

from core.snapshot import MAX_CELLS

STEP_MA_MIN = const(2000)          # a current step of at least 2 A and 0.05 C ...
STEP_RESP_MV = const(5)            # ... to which at least half of the cells (>= 2) respond by
#                                    this much in the step's direction (I x R)
NO_RESPONSE_DIV = const(4)         # a cell responding less than 1/4 of their mean: a strike
FROZEN_STRIKES = const(3)          # strikes in a row: the reading does not follow the pack
STEP_WAIT_CYCLES = const(12)       # every cell's fresh detail within this after a step (255
#                                    cells: a reading every 8 cycles), else no judgement
FOLLOW_MV = const(40)              # a flagged reading that moves this much on its own: data again


class FollowCheck:
    def __init__(self):
        self._v1 = array("H", bytes(2 * MAX_CELLS))   # readings one and two cycles ago
        self._v2 = array("H", bytes(2 * MAX_CELLS))
        self._pre = array("H", bytes(2 * MAX_CELLS))  # each cell's reading before the step
        self._resp = array("H", bytes(2 * MAX_CELLS))  # ... and its response after it (mV)
        self._done = bytearray(MAX_CELLS)             # response taken (fresh detail seen)
        self._at = array("H", bytes(2 * MAX_CELLS))   # a flagged reading's value when flagged
        self._strikes = bytearray(MAX_CELLS)
        self._frozen = bytearray(MAX_CELLS)
        self._hist_n = 0              # cycles of history (0..2) for the cells in _hist_cells
        self._hist_cells = 0
        self._i1 = 0                  # battery current one and two cycles ago
        self._i2 = 0
        self._pend = 0                # cycles since a current step whose responses are collected
        self._pend_level = 0          # the current after that step, and how far it may move
        self._pend_quiet = 0
        self.step_ma = STEP_MA_MIN    # the smallest step judged: max(2 A, 0.05 C)

    def set_capacity(self, capacity_ah):
        """The step size follows the pack: max(2 A, 0.05 C)."""
        step = capacity_ah * 50
        self.step_ma = step if step > STEP_MA_MIN else STEP_MA_MIN

    def forget(self):
        """No trusted readings this cycle (a gap, a fault, the current unknown): the history
        starts again, so no step is judged across the gap."""
        self._hist_n = 0

    def flagged(self, i):
        """True when cell ``i`` (0-based) is flagged as not following."""
        return bool(self._frozen[i])

    def update(self, cell_mv, cell_age, n, current):
        """Plausibility of every cell reading against its neighbours (allocation-free). On a
        current step (>= max(2 A, 0.05 C) from one cycle to the next, the current steady within
        a quarter of the step in the cycle before) every real cell's voltage moves by I x R.
        Each cell's response is its first reading whose detail arrived after the step's frame, against its reading two cycles before it (a board's reading may lead or lag
        the current by one frame; beyond one detail window a cell's detail comes every 2-8
        cycles), collected while the current stays within a quarter of the step, at most
        STEP_WAIT_CYCLES. When at least half of the cells (and at least two) responded by
        STEP_RESP_MV or more, a cell that responded less than a quarter of their mean gets a
        strike; FROZEN_STRIKES strikes in a row flag it (a frozen ADC or input that still shows
        noise: the bit-identical burst check cannot see it). A flagged cell is data again
        after a normal response to a step, or when its reading moves FOLLOW_MV away from where
        it froze. Returns True while any cell is flagged."""
        v1 = self._v1
        v2 = self._v2
        fz = self._frozen
        st = self._strikes
        if n != self._hist_cells:
            self._hist_cells = n
            self._hist_n = 0
            self._pend = 0
            for i in range(n):
                fz[i] = 0
                st[i] = 0
        for i in range(n):
            if fz[i]:
                d = cell_mv[i] - self._at[i]
                if d >= FOLLOW_MV or d <= -FOLLOW_MV:
                    fz[i] = 0
                    st[i] = 0
        if self._pend:
            self._pend += 1
            d = current - self._pend_level
            q = self._pend_quiet
            if d >= q or d <= -q or self._pend > STEP_WAIT_CYCLES:
                self._pend = 0                  # the current moved again: no judgement
            else:
                pre = self._pre
                resp = self._resp
                done = self._done
                left = 0
                for i in range(n):
                    if not done[i]:
                        # detail that arrived after the step's frame (the End board ages every
                        # cell once per cycle before the brain runs: fresh detail reads 1)
                        if cell_age[i] < self._pend:
                            r = cell_mv[i] - pre[i]
                            if r < 0:
                                r = -r
                            resp[i] = r
                            done[i] = 1
                        else:
                            left += 1
                if left == 0:
                    self._pend = 0
                    self.judge(n)
        elif self._hist_n >= 2:
            di = current - self._i1
            step = self.step_ma
            if di >= step or di <= -step:
                q = (di if di >= 0 else -di) >> 2
                b = self._i1 - self._i2
                if -q < b < q:
                    pre = self._pre
                    done = self._done
                    for i in range(n):
                        pre[i] = v2[i]
                        done[i] = 0
                    self._pend = 1
                    self._pend_level = current
                    self._pend_quiet = q
        for i in range(n):
            v2[i] = v1[i]
            v1[i] = cell_mv[i]
        self._i2 = self._i1
        self._i1 = current
        if self._hist_n < 2:
            self._hist_n += 1
        for i in range(n):
            if fz[i]:
                return True
        return False

    def judge(self, n):
        """Strikes from the responses of one step (see update)."""
        resp = self._resp
        moved = 0
        total = 0
        for i in range(n):
            r = resp[i]
            if r >= STEP_RESP_MV:
                moved += 1
                total += r
        if moved < 2 or moved + moved < n:
            return
        mean = total // moved
        st = self._strikes
        fz = self._frozen
        for i in range(n):
            r = resp[i]
            if r * NO_RESPONSE_DIV < mean:
                if st[i] < FROZEN_STRIKES:
                    st[i] += 1
                if st[i] >= FROZEN_STRIKES and not fz[i]:
                    fz[i] = 1
                    self._at[i] = self._v1[i]
            elif r + r >= mean:
                st[i] = 0
                fz[i] = 0
