"""firmware/boot.py on the MicroPython Unix port: safe levels on balance, relay and LED pins."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY = os.path.join(ROOT, ".venv", "bin", "micropython")

FAKE_MACHINE = '''
LOG = []
class Pin:
    OUT = 1
    IN = 0
    def __init__(self, pid, mode=-1, pull=-1, value=None):
        LOG.append((pid, mode, value))
'''


def _boot(tmp_path, board_name, extra=""):
    shutil.copy(os.path.join(ROOT, "firmware", "boot.py"), tmp_path / "boot.py")
    if board_name:
        src = open(os.path.join(ROOT, "board_defs", board_name + ".py")).read()
        (tmp_path / "board.py").write_text(src + extra)
    (tmp_path / "machine.py").write_text(FAKE_MACHINE)
    out = subprocess.run([MPY, "-c", "import boot, machine; print(sorted(machine.LOG, key=str))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_boot_sets_end_outputs_safe(tmp_path):
    from board_defs import pico_w as bd
    out = _boot(tmp_path, "pico_w")
    log = eval(out.strip().splitlines()[-1])
    assert sorted(log, key=str) == sorted([(bd.BALANCE_PIN, 1, 0), (bd.CHARGE_RELAY_PIN, 1, 0),
                                           (bd.LOAD_RELAY_PIN, 1, 0), (bd.LED_PIN, 1, 0),
                                           (bd.CHARGE_LED_PIN, 1, 0), (bd.LOAD_LED_PIN, 1, 0)], key=str)


def test_boot_skips_absent_pins_and_honours_relay_polarity(tmp_path):
    out = _boot(tmp_path, "esp32_devkitc", "\nRELAY_ACTIVE_HIGH = False\n")
    log = dict((p, v) for p, _, v in eval(out.strip().splitlines()[-1]))
    assert log[13] == 1 and log[14] == 1          # active-low relays: off = high
    out = _boot(tmp_path, "pico")
    log = eval(out.strip().splitlines()[-1])
    assert len(log) == 2                          # balance + LED; the Pico has no End outputs


def test_boot_never_raises(tmp_path):
    out = _boot(tmp_path, None)                   # no board.py at all
    assert "boot: safe outputs failed" in out
