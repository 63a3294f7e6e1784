"""Input self-test of a cell board's ADC input: is the reading still connected to the cell?

A frozen input (a stuck multiplexer or sample-and-hold, a buffer latched at one level) keeps the
ADC's own noise, so neither the bit-identical burst check (``core.sampling.CellChannel``) nor
any limit sees it, and no statistic of the pack can tell it from a cell resting on a flat
plateau (LiFePO4 moves 0.7 mV per % of charge between 60 and 95 %): a cell ahead of its
neighbours is driven past V-max while its board reports the plateau (issue 20, item 1).

So the cell board tests its own input, the way open-wire checks of BMS front ends do: every
``every`` cycles it switches a known load onto the ADC node (the pad's pull-down, or a test
resistor on a GPIO: ``hal.board``), takes a short burst, switches it off and compares the two
readings. A live input moves to ``min_permille``..``max_permille`` of its unloaded value (the
node's source resistance against the load; board definition ``CELL_PROBE_*``); a frozen input
does not move, a broken divider moves too far. ``strikes`` results in a row outside the window
make ``fault`` True (the board sends VOLT_SENSOR_FAULT: the End board treats the cell as
untrusted for both relays, within one frame); ``clear`` good results in a row clear it.

The test does not depend on the current, the chemistry, the pack size or the state of any other
cell. Reaction: at most ``every`` x ``strikes`` cycles after the input froze, plus one frame.
What it cannot see: a reading that follows the cell with a wrong gain or offset (calibration
drift) - the pack brain's plausibility checks and the limits with margin cover those.

Integers only, no allocation.
"""
from micropython import const

EVERY_CYCLES = const(2)      # a probe burst every second cycle
MIN_PERMILLE = const(300)    # probed / unprobed reading of a live input: 0.30 ..
MAX_PERMILLE = const(900)    # .. 0.90 (pad pull 50-80 kOhm against the divider's 50 kOhm)
STRIKES = const(2)
CLEAR = const(3)
SAMPLES = const(8)           # readings in a probe burst (trimmed mean, 2 dropped at each end)


class InputProbe:
    """The decision half of the self-test (the cell board does the reads)."""

    def __init__(self, every=EVERY_CYCLES, min_permille=MIN_PERMILLE, max_permille=MAX_PERMILLE,
                 strikes=STRIKES, clear=CLEAR):
        if every < 0 or not 0 < min_permille < max_permille or strikes < 1 or clear < 1:
            raise ValueError("probe: every >= 0, 0 < min < max permille, strikes, clear >= 1")
        self.every = every           # 0: no probe (board without a probe load)
        self.min_permille = min_permille
        self.max_permille = max_permille
        self.strikes = strikes
        self.clear = clear
        self.reset()

    def reset(self):
        self.fault = False
        self.bad = 0
        self.good = 0
        self.count = 0
        self.last_permille = 0       # the last ratio seen (diagnostics)
        self.tests = 0

    def due(self):
        """Call once per measurement: True when this one gets a probe burst."""
        if self.every <= 0:
            return False
        c = self.count + 1
        if c >= self.every:
            self.count = 0
            return True
        self.count = c
        return False

    def judge(self, plain_uv, probed_uv):
        """One result: the unloaded and the loaded pin readings (uV). Returns ``fault``."""
        if self.tests < 0x3FFFFFFF:
            self.tests += 1
        plain = plain_uv >> 4          # 1/16 uV steps: the product stays below 2^30 (no
        if plain <= 0:                 # allocation on the boards) for any 3.3 V ADC reading
            ratio = 0
        else:
            ratio = ((probed_uv >> 4) * 1000) // plain
        self.last_permille = ratio
        if self.min_permille <= ratio <= self.max_permille:
            self.bad = 0
            if self.good < self.clear:
                self.good += 1
            if self.fault and self.good >= self.clear:
                self.fault = False
        else:
            self.good = 0
            if self.bad < self.strikes:
                self.bad += 1
            if self.bad >= self.strikes:
                self.fault = True
        return self.fault
