"""The MicroPython half of `make test`: a core module that only works on CPython fails it, and
the runner's closing line counts what ran."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY = os.path.join(os.path.dirname(sys.executable), "micropython")
RUNNER = os.path.join(ROOT, "tools", "mp_test_runner.py")


def _run(tmp_path, module_src, test_src="def test_ok():\n    assert 1 + 1 == 2\n"):
    fw = tmp_path / "firmware" / "core"
    fw.mkdir(parents=True)
    (fw / "__init__.py").write_text("")
    (fw / "thing.py").write_text(module_src)
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_thing.py").write_text(test_src)
    r = subprocess.run([MPY, RUNNER, "--import-all", str(fw), str(tests), str(tmp_path / "firmware")],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_cpython_only_core_module_fails(tmp_path):
    rc, out = _run(tmp_path, "from dataclasses import dataclass\n\n\n@dataclass\nclass A:\n    x: int = 0\n")
    assert rc == 1, out
    assert "FAIL import core.thing" in out and "micropython: 1 passed, 1 failed" in out


def test_cpython_only_feature_inside_a_test_fails(tmp_path):
    rc, out = _run(tmp_path, "X = 1\n", "from core import thing\n\n\ndef test_zfill():\n"
                   "    assert str(thing.X).zfill(3) == '001'\n")
    assert rc == 1 and "FAIL test_thing.test_zfill" in out, out


def test_clean_module_passes_and_nothing_run_fails(tmp_path):
    rc, out = _run(tmp_path, "from micropython import const\n\nX = const(3)\n")
    assert rc == 0 and "micropython: 2 passed, 0 failed" in out, out
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([MPY, RUNNER, str(empty)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "micropython: 0 passed, 0 failed" in r.stdout   # ran nothing = failure
