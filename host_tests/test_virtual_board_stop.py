"""tools/virtual_board.py stopped with SIGTERM (as a service manager or a test harness stops
it) takes socat and the MicroPython Unix port with it."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _processes_in(folder):
    """pids whose working directory is ``folder`` (the board's micropython runs there)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink("/proc/%s/cwd" % name) == folder:
                    out.append(int(name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(shutil.which("socat") is None or not os.path.isdir("/proc"), reason="needs socat and /proc")
def test_sigterm_stops_socat_and_micropython(tmp_path):
    root, tty = str(tmp_path / "root"), str(tmp_path / "tty")
    socat = []
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "virtual_board.py"), root, "--tty", tty],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not (os.path.exists(tty) and _processes_in(root)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_in(root), "the virtual board did not start"
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            socat.extend(int(x) for x in f.read().split())
        assert socat
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        deadline = time.monotonic() + 5
        while (_processes_in(root) or any(os.path.exists("/proc/%d" % s) for s in socat)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_in(root) == []
        assert not any(os.path.exists("/proc/%d" % s) for s in socat)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        for pid in socat + _processes_in(root):      # a failed run leaves nothing behind either
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
