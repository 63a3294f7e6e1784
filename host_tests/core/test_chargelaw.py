"""The closed-loop charge law (both interpreters): CVL from the highest cell, float after
balancing and back to bulk, CCL/DCL derating, what the brain forbids is 0, never CVL 0."""
from core import chargelaw, extin
from gwpack import Pack, feed
from support import no_alloc


def view_of(p):
    dec = extin.ExtInDecoder()
    for _ in range(19):
        feed(dec, p.packet())
    return dec, dec.view


def test_bulk_below_target_gives_the_ceiling_and_full_current():
    p = Pack(16)
    p.set_cells([3320] * 16, [250] * 16)
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.target_mv == 3600
    assert law.cvl_mv == 16 * 3450          # V-balance + 50 mV per cell
    assert law.ccl_da == 1000 and law.dcl_da == 1500
    assert law.mode == chargelaw.BULK


def test_runaway_cell_pulls_cvl_below_the_pack():
    p = Pack(16)
    cells = [3400] * 16
    cells[3] = 3640                          # 40 mV above the 3600 mV target
    p.set_cells(cells, [250] * 16)
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.cvl_mv < v.pack_mv            # charging stops before V-max
    assert law.cvl_mv == v.pack_mv - 40 * 16 // 2
    assert law.cvl_mv > 0
    assert law.ccl_da < 1000 // 10           # tapered to the floor at the target


def test_cvl_tightens_at_once_and_loosens_slowly():
    p = Pack(16)
    cells = [3400] * 16
    cells[0] = 3620
    p.set_cells(cells, [250] * 16)
    dec, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    low = law.cvl_mv
    p.set_cells([3300] * 16, [250] * 16)
    feed(dec, p.packet())
    law.update(v, 1000)
    assert law.cvl_mv == low + 16 * 10       # 10 mV per cell and second


def test_never_above_the_target_per_cell_nor_zero():
    p = Pack(16)
    p.set_cells([2950] * 16, [250] * 16)
    _, v = view_of(p)
    cfg = chargelaw.LawConfig()
    cfg.bulk_cell_mv = 3800                  # configured above V-max - headroom: capped
    cfg.gain_permille = 2000
    law = chargelaw.ChargeLaw(cfg)
    law.update(v, 1000)
    assert law.cvl_mv == 16 * 3600
    p.brain.charge_allowed = False
    dec, v = view_of(p)
    law.update(v, 1000)
    assert law.ccl_da == 0
    assert law.cvl_mv >= 16 * (2900 + 100)   # the floor (DVL), never 0
    assert law.dvl_mv == 16 * 3000


def test_charge_not_allowed_means_cvl_at_pack_and_ccl_zero():
    p = Pack(16)
    p.set_cells([3350] * 16, [250] * 16)
    p.brain.charge_allowed = False
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.ccl_da == 0
    assert law.cvl_mv == v.pack_mv           # Deye: CVL = pack voltage with CCL 0 stops charging
    assert law.mode == chargelaw.STOP
    p.brain.charge_allowed = True
    _, v = view_of(p)
    law.update(v, 1000)
    assert law.mode == chargelaw.BULK and law.ccl_da > 0


def test_temperature_derating_and_cold_cutoff():
    p = Pack(4)
    p.set_cells([3300] * 4, [-10, 100, 100, 100])      # -1 degC: below T-min charge
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.ccl_da == 0
    assert law.dcl_da == 1500                           # discharge still fine at -1 degC
    p.set_cells([3300] * 4, [50, 100, 100, 100])        # 5 degC: halfway up the 10 K band
    _, v = view_of(p)
    law.update(v, 1000)
    assert 400 < law.ccl_da < 700
    p.set_cells([3300] * 4, [300, 300, 300, 500])       # 50 degC: halfway down to T-max 55
    _, v = view_of(p)
    law.update(v, 1000)
    assert 400 < law.ccl_da < 600 and 700 < law.dcl_da < 800


def test_dcl_tapers_near_vmin_but_never_zero_while_allowed():
    p = Pack(16)
    p.set_cells([2900] + [3200] * 15, [250] * 16)
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.dcl_da == 10                  # 1 A: a Multi in island mode shuts down on 0
    p.brain.load_allowed = False
    _, v = view_of(p)
    law.update(v, 1000)
    assert law.dcl_da == 0                   # the brain opened the load relay: 0


def test_float_after_balancing_and_back_to_bulk():
    p = Pack(16)
    p.set_cells([3595] * 15 + [3590], [250] * 16)
    p.brain.soc_c = 10000
    dec, v = view_of(p)
    law = chargelaw.ChargeLaw()
    for _ in range(61):
        law.update(v, 1000)
    assert law.mode == chargelaw.FLOAT
    assert law.cvl_mv <= 16 * 3350
    p.brain.soc_c = 8500
    feed(dec, p.packet())
    law.update(v, 1000)
    assert law.mode == chargelaw.BULK


def test_float_when_the_brain_opened_charge_at_full():
    p = Pack(16)
    p.set_cells([3420] * 16, [250] * 16)
    p.brain.soc_c = 10000
    p.brain.charge_allowed = False
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.mode == chargelaw.FLOAT


def test_stop_keeps_cvl_nonzero():
    p = Pack(16)
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    law.stop(v)
    assert law.ccl_da == 0 and law.dcl_da == 0 and law.cvl_mv > 0
    assert law.cvl_mv <= v.pack_mv


def test_board_def_overrides():
    class Bd:
        GW_HEADROOM_MV = 150
        GW_CHARGE_MAX_DA = 500
    cfg = chargelaw.LawConfig().apply(Bd)
    assert cfg.headroom_mv == 150 and cfg.charge_max_da == 500 and cfg.gain_permille == 500


def test_no_allocation_per_update_at_255_cells():
    p = Pack(255)
    p.set_cells([3300] * 254 + [3650], [250] * 255)
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    assert no_alloc(lambda: law.update(v, 1000))
    assert 0 < law.cvl_mv < (1 << 30)


def test_plateau_under_charge_current_is_not_float():
    p = Pack(16)
    p.set_cells([3405] * 16, [250] * 16)       # LiFePO4 plateau at 20 A: above V-balance, not full
    p.brain.current_ma = 20000
    p.brain.soc_c = 6000
    _, v = view_of(p)
    law = chargelaw.ChargeLaw()
    for _ in range(120):
        law.update(v, 1000)
    assert law.mode == chargelaw.BULK


def test_uncalibrated_soc_does_not_end_float():
    p = Pack(16)
    p.set_cells([3420] * 16, [250] * 16)
    p.brain.soc_c = 10000
    p.brain.charge_allowed = False
    dec, v = view_of(p)
    law = chargelaw.ChargeLaw()
    law.update(v, 1000)
    assert law.mode == chargelaw.FLOAT
    p.brain.soc_c = 5000
    p.brain.soc_calibrated = False             # after a reboot: 50 % is a guess, not a reason
    feed(dec, p.packet())
    law.update(v, 1000)
    assert law.mode == chargelaw.FLOAT
