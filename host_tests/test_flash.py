"""flash.sh: argument errors (exit 2), the exact dry-run commands, and a real flash onto the
virtual board (tools/virtual_board.py: the MicroPython Unix port behind a socat pty)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import virtual_board  # noqa: E402
from test_images import TREE  # noqa: E402

FLASH = os.path.join(ROOT, "flash.sh")
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")


def _fixture(tmp_path):
    fw = tmp_path / "firmware"
    for rel, src in TREE.items():
        p = fw / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
    return {"CELLCHAIN_FIRMWARE": str(fw), "CELLCHAIN_BUILD": str(tmp_path / "build")}


def _flash(*args, env=None, timeout=180):
    e = dict(os.environ)
    e.pop("CELLCHAIN_MPREMOTE_RESUME", None)
    e.update(env or {})
    r = subprocess.run([FLASH] + list(args), cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def _ensure_socat():
    if shutil.which("socat"):
        return True
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat",
                       shell=True, capture_output=True, timeout=600)
    return shutil.which("socat") is not None


def test_usage_errors_exit_2():
    for args, msg in ((("foo", "pico"), "unknown role 'foo'"),
                      (("between", "nosuch"), "unknown board 'nosuch'"),
                      (("between", "__init__"), "unknown board"),
                      (("end", "pico"), "board 'pico' cannot be the end board"),
                      (("begin", "esp32c3_devkitm"), "cannot be the begin board"),
                      (("between",), "usage"),
                      (("between", "pico", "port", "extra"), "usage"),
                      (("between", "pico", "--bogus"), "unknown option")):
        rc, out, err = _flash(*args)
        assert rc == 2, (args, rc, out, err)
        assert msg in err, (args, err)


def test_dry_run_prints_the_exact_commands(tmp_path):
    env = _fixture(tmp_path)
    rc, out, err = _flash("between", "pico", "/dev/ttyACM0", "--dry-run", env=env)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("# flash between image for pico")
    cmds = lines[1:]
    mp = ".venv/bin/mpremote connect /dev/ttyACM0"
    assert cmds[0].startswith(mp + " exec ") and "main.off" in cmds[0]          # park main.py
    assert cmds[1] == mp + " reset" and cmds[2] == "sleep 3"
    copy = cmds[3]
    assert copy.startswith(mp + " exec ") and "data" in copy and "FACTORY = False" in copy
    image = env["CELLCHAIN_BUILD"] + "/pico/between"
    cps = ["fs cp " + c for c in copy.split(" + fs cp ")[1:]]
    assert cps[-1] == "fs cp %s/main.py :main.py" % image                      # main.py last
    assert "fs cp %s/roles/between.mpy :roles/between.mpy" % image in cps
    assert "fs cp %s/board.py :board.py" % image in cps
    assert len(cps) == 13 and not any("rm" in c.split()[:2] for c in cps)
    assert cmds[4] == mp + " reset" and len(cmds) == 5
    # the virtual board: resume, no resets; factory reset is explicit
    rc, out, err = _flash("between", "pico", "port:/tmp/x", "--dry-run", "--factory-reset",
                          env=dict(env, CELLCHAIN_MPREMOTE_RESUME="1"))
    assert rc == 0, err
    cmds = out.strip().splitlines()[1:]
    assert all(c.startswith(".venv/bin/mpremote connect port:/tmp/x resume ") for c in cmds)
    assert not any(c.endswith(" reset") for c in cmds) and len(cmds) == 2
    assert "FACTORY = True" in cmds[1]


def test_dry_run_romfs_deploys_the_rom_image_and_copies_only_the_sources(tmp_path):
    env = _fixture(tmp_path)
    rc, out, err = _flash("end", "pico_w", "/dev/ttyACM0", "--dry-run", "--romfs", env=env)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("# flash end image for pico_w") and "ROM partition" in lines[0]
    cmds = lines[1:]
    mp = ".venv/bin/mpremote connect /dev/ttyACM0"
    image = env["CELLCHAIN_BUILD"] + "/pico_w/end"
    assert cmds[0].startswith(mp + " exec ") and "main.off" in cmds[0]          # park main.py first
    assert cmds[1] == mp + " reset" and cmds[2] == "sleep 3"
    assert cmds[3] == mp + " romfs deploy %s/romfs.img" % image                 # the ROM partition
    copy = cmds[4]
    assert copy.startswith(mp + " exec ") and "FACTORY = False" in copy and "ROMFS = True" in copy
    assert "n == \\'rom\\'" in copy                                                # /rom is never cleaned
    cps = ["fs cp " + c for c in copy.split(" + fs cp ")[1:]]
    assert cps == ["fs cp %s/%s :%s" % (image, f, f) for f in ("board.py", "boot.py", "main.py")]
    assert cmds[5] == mp + " reset" and len(cmds) == 6
    # the plain path refuses to run under a ROM that still holds modules
    rc, out, err = _flash("end", "pico_w", "/dev/ttyACM0", "--dry-run", env=env)
    assert rc == 0 and "romfs deploy" not in out and "romfs.img" not in out
    assert "ROMFS = False" in out and "would shadow this image" in out


def test_build_failure_is_exit_1(tmp_path):
    env = _fixture(tmp_path)
    os.remove(os.path.join(env["CELLCHAIN_FIRMWARE"], "roles", "between.py"))
    rc, out, err = _flash("between", "pico", "--dry-run", env=env)
    assert rc == 1 and "roles.between" in err and "is missing" in err


def _board_files(root):
    found = set()
    for dirpath, _d, names in os.walk(root):
        for n in names:
            found.add(os.path.relpath(os.path.join(dirpath, n), root))
    return found


def test_flash_fixture_image_onto_virtual_board(tmp_path):
    env = _fixture(tmp_path)
    if not _ensure_socat():
        pytest.skip("socat is not installed and apt-get cannot install it: no virtual board")
    root = tmp_path / "board_fs"
    (root / "data").mkdir(parents=True)
    (root / "data" / "settings.json").write_text('{"v": 1}')
    (root / "core").mkdir()
    (root / "core" / "stale_old_module.mpy").write_bytes(b"M\x06old")
    (root / "notes.txt").write_text("user file")
    env = dict(env, CELLCHAIN_MPREMOTE_RESUME="1")
    image = os.path.join(env["CELLCHAIN_BUILD"], "pico_w", "end")
    with virtual_board.VirtualBoard(str(root)) as vb:
        rc, out, err = _flash("end", "pico_w", vb.port, env=env)
        assert rc == 0, out + err
        want = _board_files(image) - {"manifest.py", "package.json", "romfs.img"}    # build artefacts only
        have = _board_files(root)
        assert want <= have, want - have
        assert "manifest.py" not in have and "package.json" not in have
        for f in want:
            assert (root / f).read_bytes() == open(os.path.join(image, f), "rb").read(), f
        assert not (root / "core" / "stale_old_module.mpy").exists()         # old code removed
        assert (root / "data" / "settings.json").read_text() == '{"v": 1}'   # data survives
        assert (root / "notes.txt").read_text() == "user file"               # not code: kept
        assert not (root / "main.off").exists()
        # the flashed .mpy files import and run on the board
        r = subprocess.run([MPREMOTE, "connect", vb.port, "resume", "exec",
                            "import core.a, roles.end; print('answer', core.a.f())"],
                           capture_output=True, text=True, timeout=60)
        assert "answer 42" in r.stdout, r.stdout + r.stderr
        # a second flash of another role: the end-only module goes, data stays
        rc, out, err = _flash("between", "pico_w", vb.port, env=env)
        assert rc == 0, out + err
        assert not (root / "roles" / "end.mpy").exists() and not (root / "hal" / "ble.mpy").exists()
        assert (root / "roles" / "between.mpy").exists()
        assert (root / "data" / "settings.json").read_text() == '{"v": 1}'
        # factory reset erases data/ (the folder itself stays)
        rc, out, err = _flash("between", "pico_w", vb.port, "--factory-reset", env=env)
        assert rc == 0, out + err
        assert (root / "data").is_dir() and not (root / "data" / "settings.json").exists()
        assert (root / "notes.txt").exists()


def test_virtual_board_with_a_rom_holding_modules(tmp_path):
    """A board whose /rom holds modules (an earlier --romfs flash): the plain path stops before it
    removes anything; --romfs on a firmware without a ROM partition (the Unix port has no
    vfs.rom_ioctl) fails with the hint, and the board keeps its files."""
    env = dict(_fixture(tmp_path), CELLCHAIN_MPREMOTE_RESUME="1")
    if not _ensure_socat():
        pytest.skip("socat is not installed and apt-get cannot install it: no virtual board")
    root = tmp_path / "board_fs"
    (root / "data").mkdir(parents=True)
    (root / "data" / "settings.json").write_text('{"v": 1}')
    (root / "core").mkdir()
    (root / "core" / "old.mpy").write_bytes(b"M\x06old")
    with virtual_board.VirtualBoard(str(root)) as vb:
        rc, out, err = _flash("end", "pico_w", vb.port, "--romfs", env=env)
        assert rc == 1 and "ROMFS partition" in err, out + err
        assert (root / "core" / "old.mpy").exists() and (root / "data" / "settings.json").exists()
        rom = os.path.join(env["CELLCHAIN_BUILD"], "pico_w", "end", "romfs.img")
        r = subprocess.run([MPREMOTE, "connect", vb.port, "resume", "exec",
                            "import vfs\nvfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')" % rom],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        rc, out, err = _flash("end", "pico_w", vb.port, env=env)
        assert rc == 1 and "would shadow this image" in out + err, out + err
        assert (root / "core" / "old.mpy").exists() and (root / "data" / "settings.json").read_text() == '{"v": 1}'


def test_flash_real_image_onto_virtual_board(tmp_path):
    build = tmp_path / "build"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_images.py"), "--board", "pico",
                        "--role", "between", "--out", str(build)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    if not _ensure_socat():
        pytest.skip("socat is not installed and apt-get cannot install it: no virtual board")
    root = tmp_path / "board_fs"
    (root / "data").mkdir(parents=True)
    (root / "data" / "calibration.json").write_text("keep me")
    with virtual_board.VirtualBoard(str(root)) as vb:
        rc, out, err = _flash("between", "pico", vb.port,
                              env={"CELLCHAIN_MPREMOTE_RESUME": "1", "CELLCHAIN_BUILD": str(build)})
        assert rc == 0, out + err
    want = _board_files(build / "pico" / "between") - {"manifest.py", "package.json", "romfs.img"}
    assert want <= _board_files(root) and "main.py" in want
    assert "diag.mpy" in want and "roles/between.mpy" in want and "roles/end.mpy" not in want
    assert (root / "data" / "calibration.json").read_text() == "keep me"
    # issue 22: diag.show() on the virtual board said "module 'machine' has no attribute 'Pin'"
    with virtual_board.VirtualBoard(str(root)) as vb:
        r = subprocess.run([MPREMOTE, "connect", vb.port, "resume", "exec", "import diag; diag.show()"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "no board hardware here" in r.stdout and "last error:" in r.stdout, r.stdout


def test_dry_run_of_the_real_firmware_with_a_relative_build_folder(tmp_path):
    """The README's command: the real image, built into a folder given relative to the repo."""
    rel = os.path.relpath(str(tmp_path / "b"), ROOT)
    rc, out, err = _flash("between", "pico", "--dry-run", env={"CELLCHAIN_BUILD": rel})
    assert rc == 0, out + err
    assert "fs cp " + rel + "/pico/between/roles/between.mpy :roles/between.mpy" in out
    assert "connect auto" in out
