"""Closed-loop charge limits for the inverter: CVL from the highest cell, every packet.

Inputs: a ``core.extin.PackView`` (the End board's extended output, one packet a second: the
highest and lowest cell with their voltages, temperatures, pack voltage, SoC, relay and fault
flags, V-min / V-max / V-balance). Outputs, in the units the CAN profiles send:

  cvl_mv   charge voltage limit, pack mV          (never 0: Victron reads 0 as over-voltage)
  ccl_da   charge current limit, 0.1 A            (0 below T-min charge, 0 when the brain
                                                   forbids charging)
  dcl_da   discharge current limit, 0.1 A         (never 0 while the brain allows discharge:
                                                   a Multi in island mode shuts down on 0)
  dvl_mv   discharge voltage limit, pack mV

The law (docs/gateway.md "Control law"):

* The top cell is held at ``target = V-max - headroom_mv`` (100 mV: LiFePO4 3.60 V under a
  3.70 V V-max). Each update integrates the top cell's error into the set point:
  ``CVL += N x gain_permille / 1000 x (target - max_cell_mv)``, bounded to ``pack_mv + N x
  error`` above (current flows only while the top cell is below the target: a runaway cell
  pulls CVL below the pack voltage at once and charging stops before it reaches V-max) and
  ``pack_mv - N x 20 mV`` below (no wind-up while the cells relax). An inverter in CV holds
  the pack at CVL, so this is an integrator in charge current; the integral is what makes the
  0.1 V steps of 0x351 (25 mV per cell on 4 cells) settle instead of a 50-100 mV sawtooth.
* CVL never exceeds the ceiling: ``N x bulk_cell_mv`` (V-balance + 50 mV unless configured)
  in bulk, ``N x float_cell_mv`` (V-balance - 50 mV) in float, and never exceeds ``N x
  target``. It rises at most ``N x rise_mv_per_s`` per second (loosens slowly, tightens at
  once) and never falls below ``N x (V-min + 100 mV)`` (the discharge voltage limit).
* Float after balancing: once the spread is at most ``float_spread_mv`` with the top cell
  within 20 mV of the target (or every cell within 20 mV of the bulk ceiling with the current
  down to C/50) for ``float_after_ms``, or when the brain has opened the charge relay at
  100 % SoC. Back to bulk when the (calibrated) SoC falls below ``bulk_soc_pct`` or the spread
  grows beyond ``bulk_spread_mv``.
* CCL: the configured maximum, tapered linearly to ``taper_floor_permille`` over the last
  ``taper_mv`` below the target (0 above V-max - headroom/2), derated linearly over
  ``t_derate_dc`` above T-min charge and below T-max, 0 below T-min charge, 0 when the brain
  forbids charging or flags over-voltage, under- or over-temperature.
* DCL: the maximum, tapered over ``low_taper_mv`` above V-min and near T-max / T-min
  discharge, at least ``dcl_min_da`` while the brain allows discharge, 0 only when it does
  not (load relay off, under-voltage, over-temperature).
* Charging not allowed (relay open, over-voltage, no data): ``CVL = min(CVL, pack_mv)``, CCL 0
  - how both a Victron (lower CVL) and a Deye (CVL = pack voltage with CCL = 0; never
  0.1 V / 0.1 A, which it reports as W31) stop charging.

The limits only ever tighten what the brain decided: a relay the brain opened is a 0 here,
and the relays stay the last line whatever an inverter does with these numbers.
Integer arithmetic only, no allocation per update (host_tests/core/test_chargelaw.py).
"""
from micropython import const

from core import extin

BULK = const(0)
FLOAT = const(1)
STOP = const(2)            # no charging (brain, flags) - the law still gives a safe CVL
MODE_NAMES = ("bulk", "float", "stop")

_NEAR_MV = const(20)       # "at the target": within this of it
_WINDUP_MV = const(20)     # per cell: CVL never further below the pack voltage
_HELD_MAX = const(0x3FFFFFFF)


class LawConfig:
    """Tunables of the law (ints). A board definition may override any as ``GW_<NAME upper>``."""

    def __init__(self):
        self.headroom_mv = 100          # top-cell target = V-max - headroom
        self.bulk_cell_mv = 0           # CVL ceiling per cell in bulk; 0: V-balance + 50 mV
        self.float_cell_mv = 0          # in float; 0: V-balance - 50 mV
        self.gain_permille = 500        # share of the top-cell error corrected per update
        self.rise_mv_per_s = 10         # per cell: CVL loosens at most this fast
        self.charge_max_da = 1000       # 100 A
        self.discharge_max_da = 1500    # 150 A
        self.taper_mv = 100             # CCL taper below the target
        self.taper_floor_permille = 50
        self.low_taper_mv = 200         # DCL taper above V-min
        self.dcl_min_da = 10            # 1 A: never 0 while discharge is allowed (Multi)
        self.tmin_charge_dc = 0         # 0 degC: no charge current below
        self.tmin_discharge_dc = -200
        self.tmax_dc = 550
        self.t_derate_dc = 100          # 10 K linear derating band
        self.float_spread_mv = 20
        self.float_after_ms = 60000
        self.bulk_soc_pct = 90
        self.bulk_spread_mv = 80

    def apply(self, board_def) -> "LawConfig":
        """Override from ``GW_<NAME>`` constants of a board definition (when present)."""
        for name in ("headroom_mv", "bulk_cell_mv", "float_cell_mv", "gain_permille", "rise_mv_per_s",
                     "charge_max_da", "discharge_max_da", "taper_mv", "taper_floor_permille",
                     "low_taper_mv", "dcl_min_da", "tmin_charge_dc", "tmin_discharge_dc", "tmax_dc",
                     "t_derate_dc", "float_spread_mv", "float_after_ms", "bulk_soc_pct",
                     "bulk_spread_mv"):
            v = getattr(board_def, "GW_" + name.upper(), None)
            if v is not None:
                setattr(self, name, v)
        return self


def _ramp(value: int, x: int, x0: int, x1: int, floor_pm: int) -> int:
    """value x (1000 at x <= x0 ... floor_pm at x >= x1) / 1000, linear, x0 < x1."""
    if x <= x0:
        return value
    if x >= x1:
        return value * floor_pm // 1000
    pm = 1000 - (1000 - floor_pm) * (x - x0) // (x1 - x0)
    return value * pm // 1000


class ChargeLaw:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else LawConfig()
        self.mode = BULK
        self.cvl_mv = 0             # 0: not computed yet (nothing is sent before the first update)
        self.ccl_da = 0
        self.dcl_da = 0
        self.dvl_mv = 0
        self.target_mv = 0          # top-cell target of the last update
        self.held_ms = 0            # time the float condition has held

    def reset(self) -> None:
        """Forget the loop state (stale data): the next fresh packet starts from its own pack voltage."""
        self.cvl_mv = 0
        self.held_ms = 0

    def update(self, v, dt_ms: int) -> None:
        cfg = self.cfg
        n = v.cells
        if n <= 0 or v.vmax_mv <= 0:
            return
        flags = v.flags
        target = v.vmax_mv - cfg.headroom_mv
        self.target_mv = target
        bulk = cfg.bulk_cell_mv if cfg.bulk_cell_mv > 0 else v.vbal_mv + 50
        if bulk > target:
            bulk = target
        flt = cfg.float_cell_mv if cfg.float_cell_mv > 0 else v.vbal_mv - 50
        if flt > bulk:
            flt = bulk
        spread = v.max_mv - v.min_mv
        charge_ok = (flags & extin.F_CHARGE_ALLOWED) and not flags & (
            extin.F_OVER_VOLTAGE | extin.F_UNDER_TEMP | extin.F_OVER_TEMP)

        # --- bulk / float --------------------------------------------------------------
        if self.mode == FLOAT:
            soc_low = v.soc_pct < cfg.bulk_soc_pct and not flags & extin.F_SOC_NOT_CALIBRATED
            if soc_low or spread > cfg.bulk_spread_mv:
                self.mode = BULK
                self.held_ms = 0
        else:
            # balanced and full: the top cell at the target, or every cell at the ceiling
            # with the current down to the tail (C/50); never the plateau under charge current
            cur = v.current_ma
            tail = v.capacity_ah() * 20           # C/50 in mA
            at_ceiling = v.min_mv >= bulk - _NEAR_MV and 0 <= cur <= tail
            done = spread <= cfg.float_spread_mv and (v.max_mv >= target - _NEAR_MV or at_ceiling)
            if done:
                h = self.held_ms + dt_ms
                self.held_ms = h if h < _HELD_MAX else _HELD_MAX
            else:
                self.held_ms = 0
            if self.held_ms >= cfg.float_after_ms or (v.soc_pct >= 100 and not flags & extin.F_CHARGE_ALLOWED):
                self.mode = FLOAT
                self.held_ms = 0
        ceiling = n * (flt if self.mode == FLOAT else bulk)

        # --- CVL: the top cell held at the target -------------------------------------
        floor = n * (v.vmin_mv + 100)
        if floor >= ceiling:
            floor = ceiling - n * 100
        pack = v.pack_mv
        prev = self.cvl_mv
        err = target - v.max_mv
        if pack <= 0:
            pack = prev if prev > 0 else ceiling
        # integral on the set point (the 0.1 V steps of 0x351 need it), bounded around the
        # pack voltage: at most N x err above it (current flows only while the top cell is
        # below the target), at most N x _WINDUP_MV below it (no wind-up while cells relax)
        u = (prev if prev > 0 else pack) + err * n * cfg.gain_permille // 1000
        hi = pack + err * n if err > 0 else pack
        lo = pack - n * _WINDUP_MV
        if u > hi:
            u = hi
        if u < lo:
            u = lo
        if u > ceiling:
            u = ceiling
        if prev > 0:
            rise = n * cfg.rise_mv_per_s * dt_ms // 1000
            if u > prev + rise:
                u = prev + rise
        if not charge_ok:
            if pack > 0 and u > pack:
                u = pack            # stop: CVL at the pack voltage (with CCL 0 below)
        if u < floor:
            u = floor
        self.cvl_mv = u
        self.dvl_mv = floor

        # --- CCL -----------------------------------------------------------------------
        ccl = cfg.charge_max_da
        if v.max_mv >= target + cfg.headroom_mv // 2:
            ccl = 0
        else:
            ccl = _ramp(ccl, v.max_mv, target - cfg.taper_mv, target, cfg.taper_floor_permille)
        if v.min_t_cell:
            tmin = v.min_t_dc
            tmax = v.max_t_dc
            if tmin < cfg.tmin_charge_dc:
                ccl = 0
            else:
                ccl = _ramp(ccl, -tmin, -(cfg.tmin_charge_dc + cfg.t_derate_dc), -cfg.tmin_charge_dc, 100)
            ccl = _ramp(ccl, tmax, cfg.tmax_dc - cfg.t_derate_dc, cfg.tmax_dc, 0)
        if not charge_ok or v.status2 & extin.S2_BELOW_TMIN_CHARGE:
            ccl = 0
        self.ccl_da = ccl
        if not charge_ok:
            if self.mode == BULK:
                self.mode = STOP
        elif self.mode == STOP:
            self.mode = BULK

        # --- DCL -----------------------------------------------------------------------
        dcl = cfg.discharge_max_da
        dcl = _ramp(dcl, -v.min_mv, -(v.vmin_mv + cfg.low_taper_mv), -v.vmin_mv, 0)
        if v.min_t_cell:
            dcl = _ramp(dcl, -v.min_t_dc, -(cfg.tmin_discharge_dc + cfg.t_derate_dc), -cfg.tmin_discharge_dc, 0)
            dcl = _ramp(dcl, v.max_t_dc, cfg.tmax_dc - cfg.t_derate_dc, cfg.tmax_dc, 0)
        if not flags & extin.F_LOAD_ALLOWED or flags & (extin.F_UNDER_VOLTAGE | extin.F_OVER_TEMP):
            dcl = 0
        elif dcl < cfg.dcl_min_da:
            dcl = cfg.dcl_min_da
        self.dcl_da = dcl

    def stop(self, v) -> None:
        """The last word before silence (stale data): no charge, no discharge, CVL at the last
        pack voltage (never 0). ``cvl_mv`` stays 0 if no packet ever came (nothing to send)."""
        pack = v.pack_mv
        if pack > 0 and (self.cvl_mv == 0 or pack < self.cvl_mv):
            self.cvl_mv = pack
        self.ccl_da = 0
        self.dcl_da = 0
        self.mode = STOP
