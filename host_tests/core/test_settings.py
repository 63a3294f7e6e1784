"""Settings: presets, validation messages, atomic apply, the settings file (both interpreters)."""
import os

from core import settings, store
from support import raises, tmpdir


def test_presets_match_manual_table():
    lfp = settings.preset(settings.LIFEPO4)
    assert (lfp.vnom_mv, lfp.vmin_mv, lfp.vbal_mv, lfp.vmax_mv) == (3300, 2900, 3400, 3700)
    lto = settings.preset(settings.LTO)
    assert (lto.vnom_mv, lto.vmin_mv, lto.vbal_mv, lto.vmax_mv) == (2300, 2150, 2600, 2800)
    nmc = settings.preset(settings.NMC)
    assert (nmc.vnom_mv, nmc.vmin_mv, nmc.vbal_mv, nmc.vmax_mv) == (3700, 3490, 4000, 4150)
    nca = settings.preset(settings.NCA)
    assert (nca.vnom_mv, nca.vmin_mv, nca.vbal_mv, nca.vmax_mv) == (3700, 3400, 4000, 4150)
    for s in (lfp, lto, nmc, nca):
        assert settings.check(s) is None
        assert s.is_configured()


def test_fresh_settings_are_not_configured():
    s = settings.Settings()
    assert not s.is_configured()
    assert settings.check(s) is None  # consistent numbers, but unknown chemistry


def test_out_of_range_names_field_and_range():
    s = settings.preset(settings.LIFEPO4)
    msg = settings.apply(s, "vmax_mv", 6000)
    assert msg is not None and "vmax_mv" in msg and "1500..5000" in msg
    assert s.vmax_mv == 3700  # unchanged
    msg = settings.apply(s, "capacity_ah", 0)
    assert "capacity_ah" in msg and "1..20000" in msg
    msg = settings.apply(s, "loop_count", 3)
    assert "loop_count" in msg
    assert s.loop_count == 1
    msg = settings.apply(s, "nonsense", 1)
    assert "unknown" in msg
    msg = settings.apply(s, "vmin_mv", "2900")
    assert "vmin_mv" in msg


def test_order_rules():
    s = settings.preset(settings.LIFEPO4)
    msg = settings.apply(s, "vbal_mv", 2800)  # below vmin 2900
    assert msg is not None and "vbal_mv" in msg
    msg = settings.apply(s, "vmax_mv", 3400)  # equal to vbal
    assert msg is not None and "vmax_mv" in msg
    msg = settings.apply(s, "tmin_charge_dc", 600)  # above tmax 55 degC
    assert "tmin_charge_dc" in msg
    msg = settings.apply(s, "discharge_restart_pct", 95)  # above charge restart 90
    assert "discharge_restart_pct" in msg
    assert settings.check(s) is None
    assert settings.apply(s, "vmax_mv", 3650) is None
    assert s.vmax_mv == 3650


def test_validate_raises_settings_error():
    s = settings.preset(settings.NMC)
    s.vmin_mv = 1000
    e = raises(settings.SettingsError, settings.validate, s)
    assert "vmin_mv" in str(e)


def test_save_and_load_round_trip():
    d = tmpdir()
    path = d + "/settings.json"
    s = settings.preset(settings.NMC)
    s.capacity_ah = 280
    s.mode = settings.CRITICAL
    settings.save(path, s)
    loaded, result = settings.load(path)
    assert result == settings.LOADED
    assert loaded == s
    assert "settings.json.tmp" not in os.listdir(d)


def test_missing_file_is_reported_and_not_configured():
    d = tmpdir()
    s, result = settings.load(d + "/nothing.json")
    assert result == settings.MISSING
    assert not s.is_configured()


def test_every_corruption_is_caught():
    d = tmpdir()
    path = d + "/settings.json"
    good = store.encode(settings.FILE_KIND, settings.FILE_VERSION, settings.preset(settings.LTO).to_dict())
    # flip each byte in turn: never garbage settings, always reported
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x21
        with open(path, "wb") as f:
            f.write(bad)
        s, result = settings.load(path)
        assert result != settings.LOADED or s == settings.preset(settings.LTO), i
        if result != settings.LOADED:
            assert not s.is_configured()
    # truncation at every length (a write cut off halfway)
    for n in range(len(good)):
        with open(path, "wb") as f:
            f.write(good[:n])
        s, result = settings.load(path)
        assert result in (settings.CORRUPT, settings.MISSING), n
        assert not s.is_configured()


def test_interrupted_write_keeps_old_settings():
    d = tmpdir()
    path = d + "/settings.json"
    old = settings.preset(settings.LIFEPO4)
    settings.save(path, old)
    # a power cut while writing leaves a half-written temporary file beside the good one
    new_bytes = store.encode(settings.FILE_KIND, settings.FILE_VERSION, settings.preset(settings.NMC).to_dict())
    with open(path + ".tmp", "wb") as f:
        f.write(new_bytes[: len(new_bytes) // 2])
    s, result = settings.load(path)
    assert result == settings.LOADED and s == old
    # the next save replaces both
    settings.save(path, settings.preset(settings.NMC))
    s, result = settings.load(path)
    assert s == settings.preset(settings.NMC)


def test_invalid_values_in_file_are_refused():
    d = tmpdir()
    path = d + "/settings.json"
    values = settings.preset(settings.LIFEPO4).to_dict()
    values["vmax_mv"] = 2000  # below vmin: consistent CRC, inconsistent settings
    store.save(path, settings.FILE_KIND, settings.FILE_VERSION, values)
    s, result = settings.load(path)
    assert result == settings.INVALID
    assert not s.is_configured()


def test_save_refuses_invalid_without_touching_file():
    d = tmpdir()
    path = d + "/settings.json"
    settings.save(path, settings.preset(settings.LIFEPO4))
    bad = settings.preset(settings.LIFEPO4)
    bad.vmax_mv = 9999
    raises(settings.SettingsError, settings.save, path, bad)
    s, result = settings.load(path)
    assert result == settings.LOADED and s.vmax_mv == 3700


def test_wrong_kind_and_version():
    d = tmpdir()
    path = d + "/x.json"
    store.save(path, "calibration", 1, {"a": 1})
    assert store.load(path, "settings", 1) == (None, store.WRONG_KIND)
    assert store.load(path, "calibration", 2) == (None, store.WRONG_VERSION)
    assert store.load(path, "calibration", 1) == ({"a": 1}, store.OK)


def test_complete_temporary_file_is_used_when_the_record_is_gone():
    # a file system whose rename cannot replace: save removed the old record, power was cut
    # before the rename; the complete new record in .tmp is the one in force
    d = tmpdir()
    path = d + "/settings.json"
    new = settings.preset(settings.NMC)
    with open(path + ".tmp", "wb") as f:
        f.write(store.encode(settings.FILE_KIND, settings.FILE_VERSION, new.to_dict()))
    s, result = settings.load(path)
    assert result == settings.LOADED and s == new
    # a half-written .tmp alone is not a record
    with open(path + ".tmp", "wb") as f:
        f.write(store.encode(settings.FILE_KIND, settings.FILE_VERSION, new.to_dict())[:40])
    s, result = settings.load(path)
    assert result == settings.MISSING and not s.is_configured()


def test_issue13_values_are_refused_not_clamped():
    """V-max 5000 mV and T-max 85 degC on LiFePO4 were accepted and cut to 4000 mV / 70 degC."""
    s = settings.preset(settings.LIFEPO4)
    msg = settings.apply(s, "vmax_mv", 5000)
    assert msg.startswith("vmax_mv=5000: must be 3410..4000 mV"), msg
    msg = settings.apply(s, "tmax_dc", 850)
    assert msg == "tmax_dc=850: must be -400..700 0.1 degC", msg
    assert (s.vmax_mv, s.tmax_dc) == (3700, 550)
    assert settings.apply(s, "vmax_mv", 4000) is None and settings.apply(s, "tmax_dc", 700) is None


def test_every_valid_set_is_used_as_stored_by_the_relays():
    """The relays' Limits clamp nothing a valid set holds: what the app shows is what protects."""
    from core.relays import Limits
    for chem in (settings.LIFEPO4, settings.LTO, settings.NMC, settings.NCA):
        lo, hi = settings.cell_mv_range(chem)
        s = settings.preset(chem)
        for name, value in (("vmax_mv", hi), ("vbal_mv", s.vmax_mv - 10), ("vmin_mv", lo),
                            ("tmax_dc", 700), ("tmin_discharge_dc", -400)):
            assert settings.apply(s, name, value) is None, (chem, name, value)
            lim = Limits(s)
            assert (lim.vmax_mv, lim.vmin_mv, lim.vbal_mv) == (s.vmax_mv, s.vmin_mv, s.vbal_mv), chem
            assert (lim.tmax_dc, lim.tmin_charge_dc, lim.tmin_discharge_dc) == (
                s.tmax_dc, s.tmin_charge_dc, s.tmin_discharge_dc), chem
        assert settings.apply(s, "vmax_mv", hi + 1) is not None
        assert settings.apply(s, "vmin_mv", lo - 1) is not None
    lto = settings.preset(settings.LTO)
    assert settings.apply(lto, "tmin_charge_dc", -300) is None       # LTO charges below 0 degC
    lfp = settings.preset(settings.LIFEPO4)
    assert "no charging below 0 degC" in settings.apply(lfp, "tmin_charge_dc", -1)


def test_comm_timeout_has_a_hard_upper_bound_in_time():
    s = settings.preset(settings.LIFEPO4)
    assert "1..10 cycles" in settings.apply(s, "comm_timeout_cycles", 30)
    assert "1..5 cycles" in settings.apply(s, "comm_timeout_cycles", 6)     # 6 x 1000 ms > 5 s
    assert settings.apply(s, "comm_timeout_cycles", 5) is None
    # a slower cycle may not stretch an accepted timeout past the bound either
    s2 = settings.preset(settings.LIFEPO4)
    assert settings.apply(s2, "cycle_ms", 500) is None
    assert settings.apply(s2, "comm_timeout_cycles", 10) is None           # 10 x 500 ms = 5 s
    msg = settings.apply(s2, "cycle_ms", 1000)
    assert msg.startswith("comm_timeout_cycles=10: must be 1..5"), msg
    assert s2.cycle_ms == 500


def test_balance_voltage_keeps_a_margin_to_vmin_and_vmax():
    s = settings.preset(settings.LIFEPO4)    # vmin 2900, vmax 3700
    assert "3100..3690" in settings.apply(s, "vbal_mv", 2500)
    assert "3100..3690" in settings.apply(s, "vbal_mv", 3695)
    assert settings.apply(s, "vbal_mv", 3100) is None
    assert "vmin_mv=3000: must be 2000..2900" in settings.apply(s, "vmin_mv", 3000)


def test_restart_thresholds_are_ordered():
    s = settings.preset(settings.LIFEPO4)    # charge restart 90 %, discharge restart 10 %
    assert "11..100" in settings.apply(s, "charge_restart_pct", 10)
    assert "0..89" in settings.apply(s, "discharge_restart_pct", 90)
    assert "vnom_mv" in settings.apply(s, "vnom_mv", 3800)


def test_chemistry_change_outside_its_voltage_limits_points_to_the_preset():
    s = settings.preset(settings.LIFEPO4)
    msg = settings.apply(s, "chemistry", settings.LTO)
    assert msg.startswith("chemistry=2:") and "CH:lto!" in msg, msg
    assert s.chemistry == settings.LIFEPO4


def test_file_with_out_of_range_values_is_invalid():
    """A file written by older firmware (T-max 85 degC was accepted then) loads as INVALID:
    not configured, so the End board keeps both relays off with SETTINGS_INVALID."""
    d = tmpdir()
    path = d + "/settings.json"
    for key, value in (("tmax_dc", 850), ("vmax_mv", 5000), ("comm_timeout_cycles", 30)):
        values = settings.preset(settings.LIFEPO4).to_dict()
        values[key] = value
        store.save(path, settings.FILE_KIND, settings.FILE_VERSION, values)
        s, result = settings.load(path)
        assert result == settings.INVALID, key
        assert not s.is_configured()
        assert settings.load_reason(path).startswith(key + "=%d" % value)


def test_chemistry_field_is_a_preset_change():
    """Issue 20: chemistry 3 then vmax_mv 4200 on LiFePO4 (both 'within range' one by one)."""
    s = settings.preset(settings.LIFEPO4)
    msg = settings.apply(s, "chemistry", settings.NMC)
    assert msg is not None and "use the preset CH:nmc!" in msg, msg
    assert settings.apply(s, "vmax_mv", 4200) is not None
    assert s.chemistry == settings.LIFEPO4 and s.vmax_mv == 3700
    assert settings.apply(s, "chemistry", settings.LIFEPO4) is None    # no change
    for bad in (0, 5, True, "nmc"):
        assert settings.apply(s, "chemistry", bad) is not None
    assert settings.apply_preset(s, settings.NMC) is None and s.vmax_mv == 4150
