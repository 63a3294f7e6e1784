"""Robustness campaign (issue 9): the End board's settings file.

- corrupted at boot (every way a flash file goes bad): both relays stay off from the first
  instant, SETTINGS_INVALID is raised, the other data files are untouched, and valid settings
  written through the app path bring the pack back;
- power lost during a settings write: the real ``core.store.save`` is cut off after every
  possible number of bytes (and between its steps); the board "reboots" (loads the file) and
  must find the previous settings (or the new ones once the rename happened), never a mix and
  never nothing; end to end on the virtual pack the End board restarts with the old settings,
  and the next settings change still works.
"""
import os

import pytest

from core import settings as cs
from core import store
from test_robustness_harness import Run, read_settings_file, read_soc_file


def _record(s):
    return store.encode(cs.FILE_KIND, cs.FILE_VERSION, s.to_dict())


def _old_new():
    old = cs.preset(cs.LIFEPO4)
    old.capacity_ah = 40
    new = old.copy()
    new.vmax_mv = 3500
    new.capacity_ah = 280
    return old, new


def _flip(data, i, bit=0):
    b = bytearray(data)
    b[i] ^= 1 << bit
    return bytes(b)


def _corruptions():
    good = _record(cs.preset(cs.LIFEPO4))
    nl = good.index(b"\n")
    bad = cs.preset(cs.LIFEPO4)
    bad.vmax_mv = 3000              # below V-balance: inconsistent, yet a well-formed record
    unconfigured = cs.Settings()    # chemistry unknown
    return [
        ("empty", b""),
        ("truncated", good[:len(good) // 2]),
        ("header only", good[:nl + 1]),
        ("bit flip in body", _flip(good, nl + 10, 3)),
        ("bit flip in crc", _flip(good, nl - 1, 0)),
        ("garbage", bytes((i * 37 + 11) & 0xFF for i in range(300))),
        ("not utf-8 header", b"\xff\xfe\xfd cellchain\n{}"),
        ("wrong kind", store.encode("soc", cs.FILE_VERSION, cs.preset(cs.LIFEPO4).to_dict())),
        ("wrong version", store.encode(cs.FILE_KIND, cs.FILE_VERSION + 1, cs.preset(cs.LIFEPO4).to_dict())),
        ("json list", store.encode(cs.FILE_KIND, cs.FILE_VERSION, [1, 2, 3])),
        ("wrong types", store.encode(cs.FILE_KIND, cs.FILE_VERSION, dict(cs.preset(cs.LIFEPO4).to_dict(),
                                                                         vmax_mv="3650"))),
        ("inconsistent values", store.encode(cs.FILE_KIND, cs.FILE_VERSION, bad.to_dict())),
        ("not configured", store.encode(cs.FILE_KIND, cs.FILE_VERSION, unconfigured.to_dict())),
        ("oversized", good + b" " * 5000),
        ("zeroed block", b"\x00" * 4096),
    ]


CORRUPTIONS = _corruptions()


@pytest.mark.parametrize("name,data", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_settings_file_at_boot_keeps_relays_off_until_valid_settings_arrive(tmp_path, name, data):
    r = Run(tmp_path, "robust_small", events=[{"t": 8, "settings": {"preset": cs.LIFEPO4}}])
    got = {}

    def corrupt_and_boot():
        store.save(r.data_path(4, "soc.json"), "soc", 1, {"soc_c": 6150, "cycles": 3, "capacity_ah": 40})
        with open(r.data_path(4, "settings.json"), "wb") as f:
            f.write(data)
        r.reboot(4, "power")
        got["at_boot"] = r.relays()
    r.at(0.0, corrupt_and_boot)
    r.until(16)
    r.finish()
    assert got["at_boot"] == (False, False)
    # both relays off from the boot until valid settings are written (t = 8 s) ...
    assert all(not c and not ld for t, c, ld in r.fine_log if t < 8000), name
    assert all("settings_invalid" in r.at_t[t]["alarms"] for t in range(1, 9)), name
    assert all(r.at_t[t]["charge_allowed"] is False for t in range(1, 9))
    # ... the other data files are not touched, the saved SoC is in use
    assert read_soc_file(r.data_path(4, "soc.json"))["soc_c"] == 6150
    assert r.at_t[4]["soc_est"] == 61.5
    # ... and the app's preset brings the pack back: written, loaded, relays closed
    assert "settings_invalid" not in r.at_t[10]["alarms"]
    assert r.at_t[14]["charge_allowed"] and r.at_t[14]["load_allowed"]
    back = read_settings_file(r.data_path(4, "settings.json"))
    assert back is not None and back.chemistry == cs.LIFEPO4


# --- power lost during a settings write ----------------------------------------------------------

class PowerCut(Exception):
    """The supply died: nothing after this point of the write happened."""


class _CutFile:
    def __init__(self, f, budget):
        self.f = f
        self.budget = budget

    def write(self, data):
        n = len(data)
        if n > self.budget[0]:
            self.f.write(data[:self.budget[0]])
            self.f.flush()
            self.budget[0] = 0
            raise PowerCut()
        self.budget[0] -= n
        return self.f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False


def _cut_save(monkeypatch, path, s, written):
    """core.settings.save (the firmware's own path) with the power cut after ``written`` bytes."""
    budget = [written]

    def cut_open(p, mode="r"):
        return _CutFile(open(p, mode), budget)
    monkeypatch.setattr(store, "open", cut_open, raising=False)
    try:
        cs.save(path, s)
        return False
    except PowerCut:
        return True
    finally:
        monkeypatch.undo()


def test_power_cut_at_every_byte_of_a_settings_write_leaves_the_previous_settings(tmp_path, monkeypatch):
    old, new = _old_new()
    n = len(_record(new))
    for written in range(n):            # every cut point inside the data, the empty .tmp included
        d = tmp_path / ("cut%d" % written)
        d.mkdir()
        path = str(d / "settings.json")
        cs.save(path, old)
        assert _cut_save(monkeypatch, path, new, written)
        assert os.path.exists(path + ".tmp")            # the half-written temporary is there
        loaded, status = cs.load(path)                   # "reboot"
        assert status == cs.LOADED and loaded == old, written
        # the next write after the reboot is not disturbed by the leftover
        cs.save(path, new)
        loaded, status = cs.load(path)
        assert status == cs.LOADED and loaded == new


class _OsCut:
    """``os`` for core.store on a file system whose rename cannot replace an existing file
    (store.save then removes the old file first), with the power cut at one of its steps."""

    def __init__(self, cut_at):
        self.cut_at = cut_at
        self.steps = []

    def _step(self, name):
        self.steps.append(name)
        if name == self.cut_at:
            raise PowerCut()

    def stat(self, p):
        return os.stat(p)

    def rename(self, a, b):
        if os.path.exists(b):
            self._step("rename refused")
            raise OSError(17, "exists")
        self._step("rename")
        os.rename(a, b)

    def remove(self, p):
        self._step("remove")
        os.remove(p)


def _cut_between_steps(monkeypatch, path, new, cut_at):
    fake = _OsCut(cut_at)
    monkeypatch.setattr(store, "os", fake)
    try:
        cs.save(path, new)
    except PowerCut:
        pass
    finally:
        monkeypatch.undo()
    return fake.steps


@pytest.mark.parametrize("cut_at", ["rename refused", "remove"])
def test_power_cut_between_the_steps_of_a_non_replacing_rename_keeps_old_settings(tmp_path, monkeypatch, cut_at):
    old, new = _old_new()
    path = str(tmp_path / "settings.json")
    cs.save(path, old)
    steps = _cut_between_steps(monkeypatch, path, new, cut_at)
    assert steps[-1] == cut_at
    loaded, status = cs.load(path)
    assert status == cs.LOADED and loaded == old


def test_power_cut_after_removing_the_old_file_still_loads_a_settings_record(tmp_path, monkeypatch):
    old, new = _old_new()
    path = str(tmp_path / "settings.json")
    cs.save(path, old)
    steps = _cut_between_steps(monkeypatch, path, new, "rename")
    assert steps == ["rename refused", "remove", "rename"]
    assert not os.path.exists(path) and os.path.exists(path + ".tmp")
    loaded, status = cs.load(path)
    assert status == cs.LOADED and loaded in (old, new)


def test_end_board_rebooting_after_cut_settings_writes_runs_on_the_previous_settings(tmp_path):
    r = Run(tmp_path, "robust_small", events=[{"t": 40, "settings": {"vmax_mv": 3650}}])
    new = cs.preset(cs.LIFEPO4)
    new.vmax_mv = 3500
    data = _record(new)
    cuts = [0, 1, 20, len(data) // 2, len(data) - 1]
    got = []

    def cut_then_reboot(n):
        with open(r.data_path(4, "settings.json"), "rb") as f:
            before = f.read()
        with open(r.data_path(4, "settings.json.tmp"), "wb") as f:
            f.write(data[:n])
        r.reboot(4, "power")
        with open(r.data_path(4, "settings.json"), "rb") as f:
            after = f.read()
        got.append((n, before, after, r.relays()))
    for i, n in enumerate(cuts):
        r.at(6.5 + 6 * i, lambda n=n: cut_then_reboot(n))
    r.until(46)
    r.finish()
    first = r.header["settings"]
    for n, before, after, relays in got:
        assert relays == (False, False), n                       # outputs safe at every start
        assert after == before, n                                # the good record untouched
    # the settings in force never changed until the app changed V-max at 40 s
    assert [c["t"] for c in r.changes] == [40]
    assert {k: v for k, v in r.changes[0]["settings"].items() if k != "vmax_mv"} == \
        {k: v for k, v in first.items() if k != "vmax_mv"}
    assert first["vmax_mv"] == 3700 and r.changes[0]["settings"]["vmax_mv"] == 3650
    for i in range(len(cuts)):
        t = 6 + 6 * i
        assert not any("settings_invalid" in r.at_t[s]["alarms"] for s in range(t + 2, t + 6))
        assert r.at_t[t + 6]["charge_allowed"] and r.at_t[t + 6]["load_allowed"], t
    assert read_settings_file(r.data_path(4, "settings.json")).vmax_mv == 3650
    assert not os.path.exists(r.data_path(4, "settings.json.tmp"))   # the next save used it up
