"""firmware/boot.py on the MicroPython Unix port: safe levels on balance, relay and LED pins."""
import os
import subprocess
import sys

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


def _boot(tmp_path, board_name, extra="", role=None):
    """Run boot.py as an image carries it (role baked in by tools/build_images.boot_py)."""
    src = open(os.path.join(ROOT, "firmware", "boot.py")).read()
    if role is not None:
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import build_images
        src = build_images.boot_py(src, role)
        assert 'IMAGE_ROLE = "%s"' % role in src
    (tmp_path / "boot.py").write_text(src)
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
    out = _boot(tmp_path, "pico_w", role="end")
    log = eval(out.strip().splitlines()[-1])
    assert sorted(log, key=str) == sorted([(bd.BALANCE_PIN, 1, 0), (bd.CHARGE_RELAY_PIN, 1, 0),
                                           (bd.LOAD_RELAY_PIN, 1, 0), (bd.LED_PIN, 1, 0),
                                           (bd.CHARGE_LED_PIN, 1, 0), (bd.LOAD_LED_PIN, 1, 0)], key=str)


def test_boot_skips_absent_pins_and_honours_relay_polarity(tmp_path):
    from board_defs import esp32_devkitc as bd
    out = _boot(tmp_path, "esp32_devkitc", "\nRELAY_ACTIVE_HIGH = False\n", role="end")
    log = dict((p, v) for p, _, v in eval(out.strip().splitlines()[-1]))
    assert log[bd.CHARGE_RELAY_PIN] == 1 and log[bd.LOAD_RELAY_PIN] == 1   # active-low: off = high
    out = _boot(tmp_path, "pico", role="between")
    log = eval(out.strip().splitlines()[-1])
    assert len(log) == 2                          # balance + LED; the Pico has no End outputs


def test_boot_drives_only_the_images_own_role(tmp_path):
    """Issue 13: boot.py drove every role's relay pins; on the ESP32 DevKitC those are the Begin
    board's inputs. A Begin or Between image touches only balance and LED."""
    from board_defs import esp32_devkitc as bd
    begin_inputs = set(bd.SWITCH_PINS) | set(p for pair in bd.CURRENT_CHANNELS for p in pair)
    for role in ("begin", "between"):
        log = eval(_boot(tmp_path, "esp32_devkitc", role=role).strip().splitlines()[-1])
        assert sorted(p for p, _, _ in log) == sorted([bd.BALANCE_PIN, bd.LED_PIN]), role
        assert not begin_inputs & set(p for p, _, _ in log)
    log = eval(_boot(tmp_path, "esp32_devkitc", role="end").strip().splitlines()[-1])
    assert (bd.CHARGE_RELAY_PIN, 1, 0) in log and (bd.LOAD_RELAY_PIN, 1, 0) in log
    # a boot.py copied by hand (role not baked in): only the pins every role has
    log = eval(_boot(tmp_path, "esp32_devkitc").strip().splitlines()[-1])
    assert sorted(p for p, _, _ in log) == sorted([bd.BALANCE_PIN, bd.LED_PIN])


def test_built_images_carry_their_role_in_boot_py():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_images
    src = open(os.path.join(ROOT, "firmware", "boot.py")).read()
    assert build_images.BOOT_ROLE_LINE in src     # the placeholder the build replaces
    for role in ("begin", "between", "end"):
        baked = build_images.boot_py(src, role)
        assert 'IMAGE_ROLE = "%s"' % role in baked and baked.count("IMAGE_ROLE = ") == 1


def test_boot_never_raises(tmp_path):
    out = _boot(tmp_path, None)                   # no board.py at all
    assert "boot: safe outputs failed" in out
