"""The virtual pack's one sensor and fault model, for both engines: what a board's ADC pins read
for the true inputs, with the scenario's injected faults and the ADC noise.

The cpython engine's hardware (sim/hw.py) and the micropython engine's (sim/mp_board.py, on the
MicroPython Unix port) read every sample through a ``BoardSensors``: same seed, same board,
same sequence of reads -> the same values, bit for bit, on both engines. Integer arithmetic
only (and nothing but the language itself), so both interpreters compute the same numbers.

Noise: unit-sigma samples (x 1e6) from a table of NOISE_LEN per run seed, filled from a 32-bit
xorshift generator (a sum of 12 uniform 16-bit draws: Irwin-Hall, close to normal); each board
starts at its own offset and takes them in turn at every read (cell, NTC, current), as a real
ADC's noise is.

Faults (set by the scenario runner, sim/engine.py ``_fault``):
  stuck_adc_uv   the cell ADC returns exactly this pin value (no noise: a stuck converter)
  frozen_uv      the cell voltage input is frozen at this cell voltage (the noise stays)
  open_ntc       NTC disconnected: the pin sits at the supply
  short_ntc      NTC shorted: the pin reads 0
  frozen_ntc_uv  the NTC input is frozen at this pin voltage (the noise stays)
  cell_offset_uv the cell reading is this much off (an offset or gain error; drift: the
                 scenario runner moves it)

Input self-test (firmware core/probe.py): while ``probe`` is True the board loads its ADC node
(the pad's pull-down or a test resistor): a live input reads PROBE_PERMILLE of its value; a
frozen or stuck input does not move (the converter path, not the node, is what froze).
"""

NOISE_LEN = 4096
CELL_NOISE_UV = 1500          # ADC noise at the cell, 1 sigma (1.5 mV)
NTC_NOISE_DIV = 2000          # NTC pin noise: unit sample / 2000 (+-0.5 mV)
ADC_MAX_UV = 3300000
PROBE_PERMILLE = 570          # a 65 kOhm pad pull-down against a 100k/100k divider's 50 kOhm
PROBE_PULL_OHM = 65000        # the same pull on the NTC node (source: series R || NTC)
# the Begin board's current channels when a caller gives none (sim/hw.py DEFAULTS, manual)
CURRENT_DEFAULTS = {"zero_uv": 1650000, "low_uv_per_a": 75000, "high_uv_per_a": 3000,
                    "low_range_ua": 20000000, "high_range_ua": 500000000,
                    "low_acc_ua": 50000, "high_acc_ua": 1250000}
_M32 = 0xFFFFFFFF
_IH_MEAN = 12 * 65535 // 2    # Irwin-Hall sum of 12 draws of 0..65535: mean; sigma 65536
_TABLES = {}


def noise_table(seed, n=NOISE_LEN):
    """n unit-sigma samples x 1e6 (ints) for ``seed`` (any int): deterministic everywhere.
    One table per run seed, shared by the boards (each starts at its own offset)."""
    key = (seed, n)
    t = _TABLES.get(key)
    if t is None:
        t = _TABLES[key] = _fill(seed, n)
    return t


def _fill(seed, n):
    x = (seed * 2654435761 + 0x9E3779B9) & _M32
    if x == 0:
        x = 0x6B43A9B5
    out = []
    for _ in range(n):
        s = 0
        for _ in range(6):                 # 6 x 32 bits = 12 draws of 16 bits
            x ^= (x << 13) & _M32
            x ^= x >> 17
            x ^= (x << 5) & _M32
            s += (x & 0xFFFF) + (x >> 16)
        out.append((s - _IH_MEAN) * 1000000 // 65536)
    return out


class BoardSensors:
    """One board's analogue front end (``index``: 0-based from the Begin board) and its faults.
    ``num`` / ``den``: the cell divider (cell voltage = pin voltage x num / den)."""

    def __init__(self, seed, index, num=2, den=1, adc_max_uv=ADC_MAX_UV):
        self.noise = noise_table(seed)
        self.ni = (index * 1031) % NOISE_LEN
        self.num = num
        self.den = den
        self.adc_max_uv = adc_max_uv
        self.stuck_adc_uv = None
        self.frozen_uv = None
        self.cell_offset_uv = 0       # the cell reading this much off (gain/offset error, drift)
        self.probe = False
        self.ntc_probe = False
        self.ntc_series_ohm = 10000
        self.frozen_ntc_uv = None
        self.open_ntc = False
        self.short_ntc = False

    def gauss_u(self):
        """The next unit-sigma noise sample x 1e6."""
        i = self.ni + 1
        if i >= NOISE_LEN:
            i = 0
        self.ni = i
        return self.noise[i]

    def cell_pin_uv(self, cell_uv):
        """The cell-voltage ADC pin (uV) for a true cell voltage of cell_uv (int uV)."""
        if self.stuck_adc_uv is not None:
            return self.stuck_adc_uv
        frozen = self.frozen_uv is not None
        if frozen:
            cell_uv = self.frozen_uv
        cell_uv += CELL_NOISE_UV * self.gauss_u() // 1000000
        pin = cell_uv * self.den // self.num
        if self.probe and not frozen:
            pin = pin * PROBE_PERMILLE // 1000
        pin += self.cell_offset_uv * self.den // self.num
        if pin < 0:
            return 0
        return pin if pin < self.adc_max_uv else self.adc_max_uv

    def ntc_pin_uv(self, pin_uv, supply_uv):
        """The NTC divider pin (uV) for the true pin voltage pin_uv (int uV; None: no NTC)."""
        if pin_uv is None:
            return None
        if self.open_ntc:
            pin_uv = supply_uv
        elif self.short_ntc:
            return 0
        frozen = self.frozen_ntc_uv is not None
        if frozen:
            pin_uv = self.frozen_ntc_uv
        v = pin_uv + self.gauss_u() // NTC_NOISE_DIV
        if self.ntc_probe and not frozen and supply_uv > 0:
            # the node's source resistance is series R x v / supply (series R || NTC)
            rth = self.ntc_series_ohm * pin_uv // supply_uv
            v = v * PROBE_PULL_OHM // (PROBE_PULL_OHM + rth)
        return v if v > 0 else 0

    def current_pin_uv(self, ua, high_range, c=None):
        """A current-sensor channel's pin (uV): ``ua`` the current through it as the sensor sees
        it (uA, int: loop count, stuck value and the sensor's offset applied; None: unplugged,
        the pin pulled to ground), noise of a third of the range's accuracy, saturating at the
        range's ends; ``c``: the channel constants (CURRENT_DEFAULTS' keys)."""
        if ua is None:
            return 0
        if c is None:
            c = CURRENT_DEFAULTS
        if high_range:
            acc, rng, scale = c["high_acc_ua"], c["high_range_ua"], c["high_uv_per_a"]
        else:
            acc, rng, scale = c["low_acc_ua"], c["low_range_ua"], c["low_uv_per_a"]
        ua += acc // 3 * self.gauss_u() // 1000000
        if ua > rng:
            ua = rng
        elif ua < -rng:
            ua = -rng
        return c["zero_uv"] + ua * scale // 1000000
