"""micropython engine: every board runs its BUILT IMAGE under the MicroPython Unix port.

The images are the ones ``make images`` builds (build/<board>/<role>/ from tools/build_images.py:
``.mpy`` files compiled by mpy-cross plus the board definition as board.py). The engine builds
the ones it needs when they are missing or older than the firmware sources
(``tools/build_images.py --board B --role R``) and copies them into the run's scratch folder,
as flashing copies them onto a board, so a rebuild elsewhere cannot change a running pack.
Board per role: the scenario's board when it can take the role, else a board with the same CPU
that can (pico -> pico_w for the End board), else the first that can.

One ``micropython`` process hosts every board; sim/mp_board.py is the hardware layer there
(each image gets its own module namespace, each board runs its image's hal.loop.Loop) and
sim/wire.py the wire between them. Each
cycle this side sends the true sensor inputs the host hw objects give (cell uV, NTC pin uV, uA
per current channel) and their fault state; over there every read goes through the same
sim/sensors.py model (seed, noise, faults) as on the cpython engine. The outputs that come back
(balance duty, relays, extended-output bytes) are applied here. App sessions (``--app-port``) travel in the same lines (``RemoteApp``).
Protocol: see sim/mp_board.py and docs/virtual-pack.md.
"""
import json
import os
import shutil
import subprocess
import sys

from sim import paths

MPY_DEFAULT = os.path.join(paths.ROOT, ".venv", "bin", "micropython")
BUILD = os.path.join(paths.ROOT, "build")
BOARD_DEFS = os.path.join(paths.ROOT, "board_defs")
BUILD_TOOL = os.path.join(paths.ROOT, "tools", "build_images.py")
_BOOT = "import sys; sys.path.insert(0, %r); import mp_board; mp_board.main()"


class MicropythonError(RuntimeError):
    pass


def _board_defs():
    """{name: constants} of every board definition, registry order."""
    sys.path.insert(0, os.path.join(paths.ROOT, "tools"))
    try:
        import build_images
    finally:
        sys.path.pop(0)
    return {n: build_images.load_board_def(os.path.join(BOARD_DEFS, n + ".py"))
            for n in build_images.board_names(BOARD_DEFS)}


def image_boards(board_name, roles):
    """{role: board name} for the images a pack needs (see the module doc)."""
    defs = _board_defs()
    base = defs.get(board_name)
    out = {}
    for role in roles:
        able = [n for n, d in defs.items() if role in d["ROLES"]]
        if not able:
            raise MicropythonError("no board definition can take the %s role" % role)
        if base is not None and role in base["ROLES"]:
            out[role] = board_name
        else:
            same_cpu = [n for n in able if base is not None and defs[n]["CPU"] == base["CPU"]]
            out[role] = (same_cpu or able)[0]
    return out


def _newest(paths_):
    t = 0.0
    for p in paths_:
        if os.path.isdir(p):
            for dirpath, _dirs, names in os.walk(p):
                for n in names:
                    if n.endswith(".py"):
                        t = max(t, os.path.getmtime(os.path.join(dirpath, n)))
        elif os.path.exists(p):
            t = max(t, os.path.getmtime(p))
    return t


def _oldest_file(folder):
    t = None
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            m = os.path.getmtime(os.path.join(dirpath, n))
            t = m if t is None else min(t, m)
    return t


def image_fresh(board, role, build=BUILD):
    folder = os.path.join(build, board, role)
    if not os.path.exists(os.path.join(folder, "roles", role + ".mpy")):
        return False
    built = _oldest_file(folder)
    sources = _newest([paths.FIRMWARE, os.path.join(BOARD_DEFS, board + ".py"), BUILD_TOOL])
    return built is not None and built >= sources


def ensure_image(board, role, dest, build=BUILD):
    """Build build/<board>/<role>/ if needed and copy it to ``dest``. Returns ``dest``.
    Processes that do this at once (a process pool, two makes) take turns on a lock file: one
    of them rebuilding while another copied gave a copy without half its modules."""
    import fcntl
    os.makedirs(build, exist_ok=True)
    with open(os.path.join(build, ".image.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _ensure_image(board, role, dest, build)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_image(board, role, dest, build):
    last = ""
    for _attempt in range(3):
        if not image_fresh(board, role, build):
            r = subprocess.run([sys.executable, BUILD_TOOL, "--board", board, "--role", role, "--out", build],
                               capture_output=True, text=True, cwd=paths.ROOT)
            if r.returncode != 0:       # (or another make rebuilt it at the same moment)
                last = "did not build:\n" + r.stdout + r.stderr
                continue
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        try:
            shutil.copytree(os.path.join(build, board, role), dest)
        except (OSError, shutil.Error) as e:     # rebuilt under our feet by another make: again
            last = "could not be copied: %s" % e
            continue
        if os.path.exists(os.path.join(dest, "roles", role + ".mpy")):
            return dest
    raise MicropythonError("image %s/%s %s" % (board, role, last))


class RemoteApp:
    """The End board's app protocol handler as seen from this side of the pipe: the interface
    cellchain.client.AppSocketServer uses (open / feed / close); the bytes go to the handler
    in the MicroPython process with the next cycle and the answers come back with its reply."""

    def __init__(self, first_sid=1):
        self.writers = {}
        self.ops = []
        self._closed = []
        self._next = first_sid      # ids never reused: the old handler's closes may still come back

    def open(self, write):
        sid = self._next
        self._next += 1
        self.writers[sid] = write
        self.ops.append(["o", sid])
        return sid

    def feed(self, data, n=-1, slot=0):
        n = len(data) if n < 0 else n
        if slot in self.writers and n > 0:
            self.ops.append(["f", slot, bytes(data[:n]).hex()])

    def close(self, slot):
        if self.writers.pop(slot, None) is not None:
            self.ops.append(["c", slot])

    def take_ops(self):
        ops, self.ops = self.ops, []
        return ops

    def deliver(self, answers, closed):
        for sid, hexed in answers:
            w = self.writers.get(sid)
            if w is not None:
                data = bytes.fromhex(hexed)
                w(data, len(data))
        for sid in closed:
            if self.writers.pop(sid, None) is not None:
                self._closed.append(sid)

    def take_closed(self):
        out, self._closed = self._closed, []
        return out


class MicropythonFirmware:
    link = "wire (micropython, built images)"

    def __init__(self, sim, mpy=None):
        self.sim = sim
        self.mpy = mpy or os.environ.get("CELLCHAIN_MICROPYTHON") or MPY_DEFAULT
        self.proc = None
        self.on = [True] * len(sim.boards)
        self.broken = []
        self._state = None
        self._settings = sim.settings.to_dict()
        self._pending_set = []         # [name, value] pairs for the next cycle
        self._pending_resets = []   # [[index, cause]] for the next line ("w")
        self._faults = None         # the fault state last sent ("f")
        self.remote = RemoteApp()
        self.images = {}        # role -> "board/role"
        self.files = {}         # role -> {module: __file__} as the MicroPython process reports
        self.light_sleeps = [0] * len(sim.boards)   # per board, as the MicroPython process reports
        self.lost_asleep = [0] * len(sim.boards)    # characters that reached a sleeping board

    def boot(self):
        if not os.path.exists(self.mpy):
            raise MicropythonError("MicroPython Unix port not found at %s (make venv)" % self.mpy)
        n = len(self.sim.boards)
        roles = ["begin", "end"] + (["between"] if n > 2 else [])
        boards = image_boards(getattr(self.sim.board_def, "NAME", "pico"), roles)
        folders = {}
        for role in roles:
            folders[role] = ensure_image(boards[role], role, os.path.join(self.sim.workdir, "images", role))
            self.images[role] = "%s/%s" % (boards[role], role)
        self.link = "wire (micropython, images %s)" % ", ".join(self.images[r] for r in roles)
        boot = _BOOT % os.path.join(paths.ROOT, "sim")
        self.proc = subprocess.Popen([self.mpy, "-X", "heapsize=64M", "-c", boot], cwd=self.sim.workdir,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        b = self.sim.boards
        cfg = {"cells": n, "dirs": [h.data_dir for h in b], "cycle_ms": self.sim.cycle_ms,
               "images": folders, "wire": os.path.join(paths.ROOT, "sim"), "seed": self.sim.seed,
               "div": [[int(h.num), int(h.den)] for h in b], "supply": [int(h.supply_uv) for h in b],
               "ch": b[0].channels, "light_sleep": bool(self.sim.sc.link.get("light_sleep", True)),
               # the inputs at power-on: a board's first measurement (at boot, before the first
               # step) reads its own cell, not a placeholder 3.3 V and no NTC
               "c": [h.true_cell_uv() for h in b], "n": [h.true_ntc_uv() for h in b]}
        lk = self.sim.sc.link
        if lk.get("byte_error_rate") or lk.get("clock_spread_pct") or lk.get("clock_pct"):
            # the line model of the cpython engine (sim/wire.py Line: byte errors, clock offsets,
            # opto), from the same values; without them the wires stay ideal, as before
            from sim.roles_chain import board_rates, line_params
            bd = self.sim.board_def
            cfg["lines"] = line_params(lk, bd, getattr(bd, "LINK_BACKEND", "pio"), self.sim.seed,
                                       board_rates(lk, n, self.sim.seed))
        reply = self._talk(cfg)
        if reply.get("ready") != n:
            raise MicropythonError("micropython did not start: %r" % (reply,))
        self.files = reply.get("files", {})
        self._state = None
        self._faults = None

    def _talk(self, obj):
        try:
            self.proc.stdin.write(json.dumps(obj) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            raise MicropythonError("micropython process died: %s" % e) from None
        if not line:
            raise MicropythonError("micropython process ended (exit %s)" % self.proc.poll())
        try:
            reply = json.loads(line)
        except ValueError:
            raise MicropythonError("micropython said: %s" % line.strip()) from None
        if "error" in reply:
            raise MicropythonError("firmware error under micropython: %s" % reply["error"])
        return reply

    def cycle(self, dt_ms):
        b = self.sim.boards
        begin = b[0]
        # true values: the noise and the faults are applied over there, read by read, by the same
        # sim/sensors.py model the cpython engine uses
        req = {"dt": dt_ms, "c": [h.true_cell_uv() for h in b], "n": [h.true_ntc_uv() for h in b],
               "i": [begin.current_ua(1, False), begin.current_ua(1, True),
                     begin.current_ua(2, False), begin.current_ua(2, True)],
               "sw": begin.read_switches(), "b": [1 if h.button else 0 for h in b],
               "p": [1 if x else 0 for x in self.on], "k": sorted(self.broken)}
        faults = [[h.faults.stuck_adc_uv, h.faults.frozen_uv, int(h.faults.open_ntc), int(h.faults.short_ntc),
                   h.faults.frozen_ntc_uv, h.faults.cell_offset_uv] for h in b]
        if faults != self._faults:
            req["f"] = self._faults = faults
        if self._pending_resets:
            req["w"] = self._pending_resets
            self._pending_resets = []
        if self._pending_set:
            req["set"] = self._pending_set
            self._pending_set = []
        ops = self.remote.take_ops()
        if ops:
            req["app"] = ops
        out = self._talk(req)
        for h, d in zip(b, out["d"], strict=True):
            if self.on[h.index]:
                h.set_balance_duty(d)
        end = b[-1]
        if self.on[-1]:
            end.set_charge_relay(bool(out["r"][0]))
            end.set_load_relay(bool(out["r"][1]))
            if out["x"]:
                end.extout_tx.write(bytes.fromhex(out["x"]))
        self.remote.deliver(out.get("ao", []), out.get("ac", []))
        self._state = out["st"]
        self.light_sleeps = out.get("sl", self.light_sleeps)
        self.lost_asleep = out.get("la", self.lost_asleep)
        msgs = out.get("msg") or []
        for (name, value), msg in zip(req.get("set", []), msgs, strict=False):
            if msg:
                print("t=%.0f s: setting %s=%r refused: %s" % (self.sim.t_ms / 1000.0, name, value, msg))

    def power(self, i, on):
        if on and not self.on[i]:
            self.sim.boards[i].cause = "power"
            if i == len(self.on) - 1:
                self.remote = RemoteApp(self.remote._next)     # a restarted End board: new sessions
        self.on[i] = bool(on)
        if not on:
            self.sim.boards[i].power_off()

    def reset(self, i, cause="watchdog"):
        """Board i restarts now (watchdog): its outputs go safe here at once, and the next line
        tells sim/mp_board.py to restart it (outputs safe, what it was receiving lost,
        role rebuilt from its image and data folder, ``reset_cause()`` = cause) before that
        cycle runs. A board without power stays off. An End board restart drops the app
        sessions (a new handler proxy, as after a power loss)."""
        if not self.on[i]:
            return
        hw = self.sim.boards[i]
        hw.safe()
        hw.cause = cause
        self._pending_resets.append([i, cause])
        if i == len(self.on) - 1:
            self.remote = RemoteApp(self.remote._next)

    def powered(self):
        return list(self.on)

    def link_break(self, position, broken):
        if broken and position not in self.broken:
            self.broken.append(position)
        elif not broken and position in self.broken:
            self.broken.remove(position)

    def apply_setting(self, name, value):
        """Applied through the End board's services at the start of the next cycle over there
        (a refusal is printed when the reply brings it)."""
        self._pending_set.append([name, value])   # every field of a settings event, in order
        return None

    def app(self):
        """The End board's app handler (a proxy over the pipe), None while it has no power."""
        return self.remote if self.on[-1] else None

    def state(self):
        st = self._state
        n = len(self.sim.boards)
        if st is None:
            return {"settings": self._settings, "cell_mv": [0] * n, "cell_status": None, "soc_c": None,
                    "alarms": None, "comm_ok": None, "current_ma": None, "soc_calibrated": None,
                    "break_position": None}
        self._settings = st["settings"]
        return st

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
