"""State of charge by coulomb counting, energy counters and the integer arithmetic they need.

Every number stays a small int on the boards (|x| < 2^30; larger ints allocate there):

* ``SocCounter`` integrates current x real elapsed time in two levels: ``sub_mams``
  (mA*ms, 0..999) carries what is below one mAs, ``acc_mas`` (mAs, 0 .. step-1) carries what is
  below one SoC step of 0.01 %. One step is ``capacity_ah * 360`` mAs, at most 7 200 000 mAs for
  the largest setting (20 000 Ah). The current is clamped to +-1 000 000 mA (1000 A) and time
  is integrated in chunks of at most 1000 ms, so one product is at most 10^9 < 2^30.
  ``soc_c`` is 0..10000 (0.01 %); counting stops at both ends (charge beyond full or below
  empty is not stored). Charge efficiency is taken as 100 %.
* ``EnergyCounter`` integrates power (0.01 W = mA x mV / 10^4, ``mul_e4``) into whole Wh the same way:
  ``sub`` (cW*ms, 0..999), ``acc_cws`` (cW*s, 0..359 999), ``wh`` (Wh, up to 2^30 = 1 TWh).
* Charge cycles: every 10 000 SoC steps counted down by discharge (100 % of capacity taken out)
  is one cycle.
"""
from micropython import const

_SOC_FULL_C = const(10000)
MAX_MA = const(1000000)
_MAX_CHUNK_MS = const(1000)
_CWS_PER_WH = const(360000)     # 0.01 W * s in one Wh
_MAS_PER_STEP_PER_AH = const(360)  # mAs in 0.01 % of 1 Ah


def _mul_div(a, b, hi, mid, lo):
    """a * b / 10^k split in thousands so no intermediate passes 2^30 (small ints on the
    boards): hi = 10^(6-k), mid = 10^(k-3), lo = 10^k."""
    neg = False
    if a < 0:
        a = -a
        neg = not neg
    if b < 0:
        b = -b
        neg = not neg
    ah = a // 1000
    al = a - ah * 1000
    bh = b // 1000
    bl = b - bh * 1000
    r = ah * bh * hi + (ah * bl + al * bh) // mid + (al * bl) // lo
    return -r if neg else r


def mul_e5(a, b):
    """floor-ish(a * b / 100000) for 0 <= a, b < 2 500 000 without intermediates beyond 2^30
    (error below 3 units). Used for 0.01 Ah x mV -> Wh."""
    return _mul_div(a, b, 10, 100, 100000)


def mul_e4(a, b):
    """a * b / 10000 (mA x mV -> 0.01 W) for |a|, |b| < 2 500 000, intermediates below 2^30
    (error below 3 units)."""
    return _mul_div(a, b, 100, 10, 10000)


class SocCounter:
    """Coulomb counter. ``integrate(current_ma, dt_ms)`` every cycle (+ = charging)."""

    def __init__(self, capacity_ah=100, soc_c=5000):
        self.step_mas = 100 * _MAS_PER_STEP_PER_AH
        self.soc_c = 0
        self.acc_mas = 0
        self.sub_mams = 0
        self.discharged_steps = 0   # 0..9999 toward the next charge cycle
        self.cycles = 0
        self.set_capacity(capacity_ah)
        self.set_soc(soc_c)

    def set_capacity(self, capacity_ah):
        if capacity_ah < 1:
            capacity_ah = 1
        if capacity_ah > 20000:
            capacity_ah = 20000
        self.step_mas = capacity_ah * _MAS_PER_STEP_PER_AH
        if self.acc_mas >= self.step_mas:
            self.acc_mas = self.step_mas - 1

    def set_soc(self, soc_c):
        """Recalibrate (full = 10000, empty = 0) or restore; clears the fractions."""
        if soc_c < 0:
            soc_c = 0
        if soc_c > _SOC_FULL_C:
            soc_c = _SOC_FULL_C
        self.soc_c = soc_c
        self.acc_mas = 0
        self.sub_mams = 0

    def integrate(self, current_ma, dt_ms):
        """Add current_ma x dt_ms. Returns nothing; allocation-free for dt_ms <= 2^30."""
        if current_ma > MAX_MA:
            current_ma = MAX_MA
        elif current_ma < -MAX_MA:
            current_ma = -MAX_MA
        while dt_ms > 0:
            chunk = dt_ms if dt_ms < _MAX_CHUNK_MS else _MAX_CHUNK_MS
            dt_ms -= chunk
            t = self.sub_mams + current_ma * chunk      # |t| <= 10^9 + 999
            q = t // 1000
            self.sub_mams = t - q * 1000                # 0..999
            self._add_mas(q)

    def _add_mas(self, mas):
        acc = self.acc_mas + mas
        n = acc // self.step_mas                        # floor: negative when discharging
        self.acc_mas = acc - n * self.step_mas          # 0 .. step-1
        if n == 0:
            return
        soc = self.soc_c + n
        if soc >= _SOC_FULL_C:
            soc = _SOC_FULL_C
            self.acc_mas = 0
        elif soc < 0:
            # below empty: counted steps that actually happened still wear the pack
            n = -self.soc_c
            soc = 0
            self.acc_mas = 0
        if n < 0:
            self._count_discharge(-n)
        self.soc_c = soc

    def _count_discharge(self, steps):
        d = self.discharged_steps + steps
        while d >= _SOC_FULL_C:
            d -= _SOC_FULL_C
            self.cycles += 1
        self.discharged_steps = d


class EnergyCounter:
    """Whole Wh from power in 0.01 W over real time (allocation-free, see module doc)."""

    def __init__(self):
        self.wh = 0
        self.acc_cws = 0
        self.sub = 0

    def reset(self):
        self.wh = 0
        self.acc_cws = 0
        self.sub = 0

    def integrate(self, power_cw, dt_ms):
        """power_cw >= 0 (0.01 W, < 2^30 / 1000 per 1000 ms chunk after the split)."""
        if power_cw <= 0:
            return
        ph = power_cw // 1000
        pl = power_cw - ph * 1000
        while dt_ms > 0:
            chunk = dt_ms if dt_ms < _MAX_CHUNK_MS else _MAX_CHUNK_MS
            dt_ms -= chunk
            # power_cw * chunk / 1000 = ph * chunk + pl * chunk / 1000
            t = self.sub + pl * chunk
            q = t // 1000
            self.sub = t - q * 1000
            acc = self.acc_cws + ph * chunk + q
            if acc >= _CWS_PER_WH:
                n = acc // _CWS_PER_WH
                self.wh += n
                acc -= n * _CWS_PER_WH
            self.acc_cws = acc


class FullEmptyDetector:
    """Recalibration conditions from the manual's Algorithm chapter, debounced.

    ``update(full_now, empty_now, dt_ms)`` sets ``full`` after ``full_samples`` consecutive
    samples with the full condition and ``empty`` after ``empty_ms`` of the empty condition;
    each is an edge (True for one call), so the caller recalibrates once per event.
    """

    def __init__(self, full_samples=3, empty_ms=30000):
        self.full_samples = full_samples
        self.empty_ms = empty_ms
        self._full_n = 0
        self._empty_ms = 0
        self._full_done = False
        self._empty_done = False
        self.full = False          # edges: True for the one call where the condition matured
        self.empty = False
        self.full_active = False   # levels: condition matured and still holding
        self.empty_active = False

    def update(self, full_now, empty_now, dt_ms):
        self.full = False
        self.empty = False
        if full_now:
            if self._full_n < self.full_samples:
                self._full_n += 1
            if self._full_n >= self.full_samples and not self._full_done:
                self._full_done = True
                self.full = True
        else:
            self._full_n = 0
            self._full_done = False
        if empty_now:
            if self._empty_ms < self.empty_ms:
                self._empty_ms += dt_ms
            if self._empty_ms >= self.empty_ms and not self._empty_done:
                self._empty_done = True
                self.empty = True
        else:
            self._empty_ms = 0
            self._empty_done = False
        self.full_active = self._full_done
        self.empty_active = self._empty_done
