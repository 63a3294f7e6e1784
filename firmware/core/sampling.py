"""Cell-voltage sampling: oversampling with outlier rejection, a light filter, two-point calibration.

Pipeline per measurement (one call of ``CellChannel.begin()``, N ``add(pin_uv)``, ``finish()``):

1. ``Oversampler``: the N raw readings (µV at the ADC pin, from hal) are kept sorted in a
   preallocated array; the ``trim`` lowest and highest are dropped and the rest averaged (a trimmed
   mean: spikes and the ADC's occasional wild codes never reach the result).
2. ``LightFilter``: a first-order IIR (``acc += x - acc >> shift``) that smooths what noise is left,
   but jumps straight to the new value on a step larger than ``step_uv`` (a real load step is
   followed at once, not smeared over several cycles). Its output (``cell_mv``) is for
   diagnostics; the value the link carries, which the balancer and the pack brain's V-max /
   V-min checks use, is
   ``fast_mv``, the same pipeline without the filter (the trimmed mean of this burst): on a
   steadily moving cell the filter lags 3-4 cycles. The trimmed mean is also the limit
   checks' count-based debounce: up to ``trim`` wild reads at either end of a burst never move
   it, so the pack brain trips on the first sample over a limit (core.relays.LIMIT_SAMPLES).
3. Nominal divider: pin µV -> cell voltage in 0.1 mV with the board definition's
   ``CELL_DIVIDER_NUM / CELL_DIVIDER_DEN``.
4. ``Calibration``: cell_01mv = nominal + nominal * delta_q16 / 65536 + offset_01mv, i.e. a gain
   close to 1 (stored as its difference from 1 in 1/65536) and an offset, found from two known
   voltages (``solve_two_point``). The result is rounded to mV.
5. Plausibility: a burst at the ADC's rails, or a result outside ``CELL_MIN_MV`` ..
   ``CELL_MAX_MV`` (1.0 .. 5.1 V; the boards work from 1.5 to 5.0 V), is not a cell voltage:
   ``ok`` False, which the cell board reports as VOLT_SENSOR_FAULT (no balancing; the pack brain
   treats it as a sensor fault, not as an over- or under-voltage of the cell). A stuck-high ADC
   (e.g. 5.5 V) therefore never drains a cell through its balance resistor.

All of it is integer arithmetic on values that stay far below 2**30 (small ints on the boards),
so ``begin/add/finish`` allocate nothing. Computing a calibration allocates (floats, messages);
it only runs from the REPL.
"""
from array import array

from micropython import const

# Plausible cell voltages: the boards work from 1.5 to 5.0 V; outside 1.0 .. 5.1 V the reading is
# a sensor fault (open input, stuck or saturated ADC), never a real over-/under-voltage.
CELL_MIN_MV = const(1000)
CELL_MAX_MV = const(5100)

# Calibration acceptance limits (a calibration outside these is refused with a message).
_GAIN_MIN_PPM = const(900000)      # gain 0.90 .. 1.10 of the nominal divider
_GAIN_MAX_PPM = const(1100000)
_OFFSET_MAX_MV = const(200)        # |offset| at 0 V
_MIN_SPAN_MV = const(500)          # the two calibration voltages at least this far apart
_POINT_MIN_MV = const(1000)        # each applied voltage inside 1.0 .. 5.5 V
_POINT_MAX_MV = const(5500)

_Q16 = const(65536)
_MAX_PIN_UV = const(5000000)      # anything above is clamped (no ADC pin sees more than 3.6 V)
_MAX_NUM = const(3000)            # keeps pin_10uv * num below 2**30 for pin readings <= 3.4 V


class CalibrationError(ValueError):
    """A calibration that makes no sense (message says why)."""


class Oversampler:
    """Trimmed mean of up to ``n`` readings; ``trim`` dropped at each end. No allocation."""

    def __init__(self, n=16, trim=4):
        if n < 1 or trim < 0:
            raise ValueError("n >= 1, trim >= 0")
        self.n = n
        self.trim = trim
        self.buf = array("i", [0] * n)
        self.count = 0

    def reset(self):
        self.count = 0

    def add(self, value):
        """Insert one reading, keeping the buffer sorted (readings beyond ``n`` are ignored)."""
        if self.count >= self.n:
            return
        buf = self.buf
        i = self.count
        while i > 0 and buf[i - 1] > value:
            buf[i] = buf[i - 1]
            i -= 1
        buf[i] = value
        self.count += 1

    def result(self):
        """Trimmed mean (median-like when too few readings to trim); 0 when empty."""
        count = self.count
        if count == 0:
            return 0
        trim = self.trim
        if count <= 2 * trim:
            # too few to trim as configured: the middle one or two
            trim = (count - 1) // 2
        total = 0
        buf = self.buf
        for i in range(trim, count - trim):
            total += buf[i]
        kept = count - 2 * trim
        return (total + kept // 2) // kept

    def spread(self):
        """Max - min of the kept readings (noise indicator for diagnostics)."""
        count = self.count
        if count == 0:
            return 0
        trim = self.trim if count > 2 * self.trim else (count - 1) // 2
        return self.buf[count - 1 - trim] - self.buf[trim]


class LightFilter:
    """First-order IIR with step bypass. ``shift`` 0 = no filtering."""

    def __init__(self, shift=2, step=15000):
        self.shift = shift
        self.step = step
        self.acc = 0
        self.primed = False

    def reset(self):
        self.primed = False
        self.acc = 0

    def update(self, x):
        shift = self.shift
        if not self.primed:
            self.acc = x << shift
            self.primed = True
            return x
        out = self.acc >> shift
        d = x - out
        if d > self.step or d < -self.step:
            self.acc = x << shift
            return x
        self.acc += d
        return self.acc >> shift

    @property
    def value(self):
        return self.acc >> self.shift


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def reduce_divider(num, den):
    """(num, den) reduced, and scaled so that ``pin_10uv * num`` stays a small int on the boards.
    Raises ValueError on a divider that cannot be right (ratio outside 1..10)."""
    num = int(num)
    den = int(den)
    if den <= 0 or num < den or num > 10 * den:
        raise ValueError("cell divider ratio NUM/DEN must be 1..10")
    g = _gcd(num, den)
    num //= g
    den //= g
    if num > _MAX_NUM:
        factor = (num + _MAX_NUM - 1) // _MAX_NUM
        num = (num + factor // 2) // factor
        den = max(1, (den + factor // 2) // factor)
    return num, den


class Calibration:
    """Gain (as delta from 1 in 1/65536) and offset (0.1 mV). Identity until calibrated."""

    def __init__(self, delta_q16=0, offset_01mv=0, calibrated=False):
        self.delta_q16 = int(delta_q16)
        self.offset_01mv = int(offset_01mv)
        self.calibrated = calibrated

    def apply(self, nominal_01mv):
        """Calibrated cell voltage in 0.1 mV from the nominal one (no allocation)."""
        return nominal_01mv + ((nominal_01mv * self.delta_q16) >> 16) + self.offset_01mv

    def gain_ppm(self):
        return 1000000 + (self.delta_q16 * 1000000) // _Q16

    def to_dict(self):
        return {"cell_delta_q16": self.delta_q16, "cell_offset_01mv": self.offset_01mv}

    @classmethod
    def from_dict(cls, values):
        """Calibration from stored values; identity (not calibrated) when absent or out of limits."""
        try:
            delta = int(values["cell_delta_q16"])
            offset = int(values["cell_offset_01mv"])
        except (KeyError, TypeError, ValueError):
            return cls()
        gain = 1000000 + (delta * 1000000) // _Q16
        if not _GAIN_MIN_PPM <= gain <= _GAIN_MAX_PPM or abs(offset) > _OFFSET_MAX_MV * 10:
            return cls()
        return cls(delta, offset, True)


def solve_two_point(nominal1_01mv, actual1_mv, nominal2_01mv, actual2_mv):
    """Calibration mapping two nominal readings (0.1 mV) onto the applied voltages (mV).

    Raises CalibrationError with a message naming the problem: a point outside 1.0..5.5 V,
    points closer than 0.5 V, a gain outside 0.90..1.10 or an offset beyond 200 mV."""
    for mv in (actual1_mv, actual2_mv):
        if not _POINT_MIN_MV <= mv <= _POINT_MAX_MV:
            raise CalibrationError("applied voltage %d mV outside %d..%d mV" % (mv, _POINT_MIN_MV, _POINT_MAX_MV))
    if abs(actual2_mv - actual1_mv) < _MIN_SPAN_MV:
        raise CalibrationError("calibration points %d and %d mV are closer than %d mV"
                               % (actual1_mv, actual2_mv, _MIN_SPAN_MV))
    dn = nominal2_01mv - nominal1_01mv
    if dn == 0:
        raise CalibrationError("the reading did not change between the two points (is the voltage applied?)")
    gain = (actual2_mv - actual1_mv) * 10.0 / dn
    ppm = int(gain * 1000000 + 0.5)
    if not _GAIN_MIN_PPM <= ppm <= _GAIN_MAX_PPM:
        raise CalibrationError("gain %d.%03d is too far from 1 (allowed 0.900..1.100): wrong voltage entered "
                               "or wrong divider in the board definition" % (ppm // 1000000, (ppm % 1000000) // 1000))
    offset = actual1_mv * 10.0 - gain * nominal1_01mv
    offset_01mv = int(offset + 0.5) if offset >= 0 else -int(-offset + 0.5)
    if abs(offset_01mv) > _OFFSET_MAX_MV * 10:
        raise CalibrationError("offset %d mV is beyond +-%d mV" % (offset_01mv // 10, _OFFSET_MAX_MV))
    delta = gain - 1.0
    delta_q16 = int(delta * _Q16 + 0.5) if delta >= 0 else -int(-delta * _Q16 + 0.5)
    return Calibration(delta_q16, offset_01mv, True)


class CellChannel:
    """One cell-voltage input: oversample -> filter -> divider -> calibration. No allocation.

    ``full_scale_uv`` is the highest reading the ADC can give: a reading within 1 % of it, or
    below ``min_pin_uv``, marks the measurement as a sensor fault (saturated / open); so does a
    cell voltage outside ``CELL_MIN_MV`` .. ``CELL_MAX_MV`` after calibration."""

    def __init__(self, divider_num, divider_den, samples=16, trim=4, filter_shift=2,
                 filter_step_uv=15000, full_scale_uv=3300000, min_pin_uv=100000, stuck_bursts=0):
        self.num, self.den = reduce_divider(divider_num, divider_den)
        self.over = Oversampler(samples, trim)
        self.filter = LightFilter(filter_shift, filter_step_uv)
        self.cal = Calibration()
        self.samples = samples
        self.sat_uv = full_scale_uv - full_scale_uv // 100
        self.min_pin_uv = min_pin_uv
        self.pin_uv = 0          # filtered pin voltage
        self.raw_uv = 0          # this burst's trimmed mean at the pin (the input self-test)
        self.nominal_01mv = 0    # before calibration
        self.cell_mv = 0         # filtered (diagnostics)
        self.fast_mv = 0         # unfiltered trimmed mean of this burst (link, limit checks)
        self.ok = False          # last measurement plausible (ADC off its rails AND a cell voltage)
        self.adc_ok = False      # ADC off its rails (calibration uses this: before calibration a
                                 # gain error may put a real 5.0 V cell outside CELL_MAX_MV)
        # A real ADC shows a few LSB of noise in every burst; ``stuck_bursts`` bursts in a row
        # with every reading identical mean a frozen converter or input (0 = check off).
        self.stuck_bursts = stuck_bursts
        self.flat_bursts = 0
        self.stuck = False

    def begin(self):
        self.over.reset()

    def add(self, pin_uv):
        if pin_uv < 0:
            pin_uv = 0
        elif pin_uv > _MAX_PIN_UV:
            pin_uv = _MAX_PIN_UV
        self.over.add(pin_uv)

    def _to_mv(self, nominal_01mv):
        cal01 = self.cal.apply(nominal_01mv)
        if cal01 < 0:
            cal01 = 0
        mv = (cal01 + 5) // 10
        return mv if mv <= 65535 else 65535

    def finish(self):
        """Close the measurement; returns the calibrated, filtered cell voltage in mV (also in
        cell_mv); ``fast_mv`` holds the unfiltered one."""
        over = self.over
        if over.count >= 4 and over.buf[over.count - 1] == over.buf[0]:
            if self.flat_bursts < 0x3FFF:
                self.flat_bursts += 1
        else:
            self.flat_bursts = 0
        self.stuck = self.stuck_bursts > 0 and self.flat_bursts >= self.stuck_bursts
        raw = over.result()
        self.raw_uv = raw
        if self.over.count == 0 or raw < self.min_pin_uv or raw >= self.sat_uv:
            self.ok = False
            self.adc_ok = False
            self.filter.reset()
            self.pin_uv = raw
        else:
            self.ok = True
            self.adc_ok = True
            self.pin_uv = self.filter.update(raw)
        self.nominal_01mv = ((self.pin_uv // 10) * self.num) // (self.den * 10)
        mv = self._to_mv(self.nominal_01mv)
        fast = self._to_mv(((raw // 10) * self.num) // (self.den * 10)) if self.ok else mv
        self.fast_mv = fast
        if self.ok and not (CELL_MIN_MV <= mv <= CELL_MAX_MV and CELL_MIN_MV <= fast <= CELL_MAX_MV):
            self.ok = False          # not a cell voltage: the next plausible one starts afresh
            self.filter.reset()
        if self.stuck:
            self.ok = False          # frozen: whatever it says is not a measurement
        self.cell_mv = mv
        return mv
