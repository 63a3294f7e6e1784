"""A virtual board for mpremote: the MicroPython Unix port behind a pseudo-terminal (socat).

    python tools/virtual_board.py ROOT [--tty PATH]      # runs until Ctrl-C; prints the tty
    CELLCHAIN_MPREMOTE_RESUME=1 ./flash.sh between pico port:PATH

ROOT is the board's file system (the process runs with ROOT as its current folder, so
``fs cp x :y`` lands in ROOT/y). mpremote must be given ``resume``: without it mpremote
soft-resets with Ctrl-D, which makes the Unix port exit. The Unix port has no machine.reset,
so nothing that resets can be run against it.

Library use (tests): ``with VirtualBoard(root) as vb: ... vb.port`` ("port:/path/to/pty").
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micropython_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else (shutil.which("micropython") or "micropython")


def socat_exe():
    return shutil.which("socat")


class VirtualBoard:
    """socat PTY <-> micropython in ``root``; ``port`` is the mpremote port spec."""

    def __init__(self, root, tty=None):
        self.root = os.path.abspath(root)
        self._tmp = None
        if tty is None:
            self._tmp = tempfile.mkdtemp(prefix="cellchain-vb-")
            tty = os.path.join(self._tmp, "tty")
        self.tty = tty
        self.port = "port:" + tty
        self.proc = None

    def start(self, timeout_s=10.0):
        socat = socat_exe()
        if socat is None:
            raise RuntimeError("socat is not installed (Debian package 'socat')")
        os.makedirs(self.root, exist_ok=True)
        inner = "cd %s && exec %s" % (_sh_quote(self.root), _sh_quote(micropython_exe()))
        cmd = [socat, "PTY,link=%s,raw,echo=0,ignoreeof" % self.tty,
               "SYSTEM:%s,pty,raw,echo=0,setsid,ctty" % _socat_quote(inner)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.tty):
            if self.proc.poll() is not None:
                raise RuntimeError("socat exited: %s" % self.proc.stderr.read().decode(errors="replace"))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("virtual board tty %s did not appear" % self.tty)
            time.sleep(0.05)
        time.sleep(0.3)   # let the REPL print its banner
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)   # socat and its micropython child
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def _socat_quote(s):
    # socat address options are separated by ',' and ':'; quote the whole command
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv=None):
    ap = argparse.ArgumentParser(description="MicroPython Unix port as a board behind a pty")
    ap.add_argument("root", help="folder that is the board's file system")
    ap.add_argument("--tty", help="pty link path (default: a temporary one)")
    args = ap.parse_args(argv)
    vb = VirtualBoard(args.root, args.tty)

    def terminate(signum, frame):
        raise KeyboardInterrupt      # SIGTERM/SIGHUP: stop socat and micropython as Ctrl-C does
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    try:
        vb.start()
    except RuntimeError as e:
        print("virtual_board: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        vb.stop()
        return 0
    print("virtual board on %s (root %s); Ctrl-C to stop" % (vb.port, vb.root), flush=True)
    try:
        while vb.proc is not None and vb.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        vb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
