"""tools/typecheck.py: a wrong machine call is caught per target; target markers are honoured."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import typecheck  # noqa: E402


def _run(target, *paths):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "typecheck.py"), "--target", target,
                          "--paths"] + [str(p) for p in paths], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    return res.returncode, res.stdout + res.stderr


def test_read_uv_is_an_error_on_rp2_only(tmp_path):
    bad = tmp_path / "adc_probe.py"
    bad.write_text("from machine import ADC, Pin\n\n\ndef cell():\n    return ADC(Pin(26)).read_uv()\n")
    rc, out = _run("rp2", bad)
    assert rc == 1, out
    assert "read_uv" in out and "adc_probe.py:5" in out and "FAILED" in out
    rc, out = _run("esp32", bad)
    assert rc == 0, out
    assert "esp32  ok" in out


def test_missing_board_module_is_caught(tmp_path):
    bad = tmp_path / "imports_probe.py"
    bad.write_text("import dataclasses\nimport esp32\n")
    rc, out = _run("rp2", bad)          # neither exists on an RP2040 board
    assert rc == 1 and "dataclasses" in out and '"esp32"' in out, out
    rc, out = _run("esp32", bad)
    assert rc == 1 and "dataclasses" in out and '"esp32"' not in out, out


def test_target_markers(tmp_path):
    pio = tmp_path / "thing_pio.py"
    pio.write_text("import rp2\n\n\ndef f():\n    return rp2.StateMachine(0)\n")
    marked = tmp_path / "only_esp.py"
    marked.write_text('"""doc"""\n# mypy-targets: esp32\nimport esp32\n\nT = esp32.raw_temperature()\n')
    assert typecheck.file_targets(str(pio)) == ("rp2",)
    assert typecheck.file_targets(str(marked)) == ("esp32",)
    rc, out = _run("esp32", pio, marked)     # thing_pio skipped here, only_esp checked
    assert rc == 0, out
    rc, out = _run("rp2", pio, marked)
    assert rc == 0, out


def test_stub_errors_silenced_by_module_not_firmware():
    folder = typecheck.ensure_stubs("rp2")
    names = typecheck.stub_modules(folder)
    assert "machine" in names and "rp2" in names and "bluetooth" in names
    for ours in ("core", "hal", "roles", "board_defs", "board", "boot", "diag"):
        assert ours not in names
    assert typecheck.module_name(os.path.join(ROOT, "firmware", "hal", "board.py")) == "hal.board"
    assert typecheck.module_name(os.path.join(ROOT, "firmware", "core", "__init__.py")) == "core"
