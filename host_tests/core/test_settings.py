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
