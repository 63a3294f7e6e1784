"""cpython engine: the firmware's own code runs in this process on the virtual hardware.

Every board runs its real role object, built as a board builds it (``roles/<role>.make(hw,
board_def)``), joined by the virtual wire (sim/roles_chain.py). The End board's own services
(roles/end_app.py) keep its settings file, send the extended output, save the state and answer
the app protocol (``app()``, served on a TCP port by sim/app_server.py).
"""
from sim import paths  # noqa: F401
from sim.roles_chain import RolesChain


class CpythonFirmware:
    """Engine front: runs the chain and reports the End board's state for the trace."""

    link = "wire"

    def __init__(self, sim):
        self.sim = sim
        self.chain = RolesChain(sim)
        self._settings = sim.settings.to_dict()   # last settings seen (while the End is off)

    def boot(self):
        self.chain.boot()

    def cycle(self, dt_ms):
        self.chain.cycle(dt_ms)

    def power(self, i, on):
        self.chain.power(i, on)

    def reset(self, i, cause="watchdog"):
        """Board i restarts now (watchdog): outputs safe, role rebuilt from its data folder,
        ``hw.reset_cause()`` = cause. No time passes; the board keeps its cycle phase."""
        self.chain.reset(i, cause)

    def powered(self):
        return list(self.chain.on)

    def link_break(self, position, broken):
        self.chain.link_break(position, broken)

    def apply_setting(self, name, value):
        return self.chain.apply_setting(name, value)

    def app(self):
        """The End board's app protocol handler (core.app_protocol.AppProtocol), or None while
        the board has no power. A new object after every restart of the board."""
        role = self.chain.end_role()
        return None if role is None else role.app

    def state(self):
        role = self.chain.end_role()
        n = len(self.sim.boards)
        if role is None:
            return {"settings": self._settings, "cell_mv": [0] * n, "cell_status": None, "soc_c": None,
                    "alarms": None, "comm_ok": None, "current_ma": None, "soc_calibrated": None,
                    "break_position": None}
        snap, brain = role.snap, role.brain
        fresh = snap.valid and snap.comm_ok
        self._settings = role.settings.to_dict()
        return {
            "settings": self._settings,
            "cell_mv": [int(snap.cell_mv[i]) if fresh else 0 for i in range(n)],
            "cell_status": [int(snap.cell_status[i]) for i in range(n)],
            "soc_c": brain.soc_c,
            "soc_calibrated": brain.soc_calibrated,
            "alarms": brain.alarms,
            "comm_ok": bool(snap.comm_ok),
            "current_ma": brain.current_ma,
            "break_position": brain.break_position,
            "reset_position": brain.reset_position,
            "link_good": snap.link_good,
        }

    def close(self):
        self.chain.close()
