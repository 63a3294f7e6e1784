"""The app protocol of the virtual End board on a local TCP port (``python -m sim run --app-port P``).

Uses the firmware's own handler (core.app_protocol.AppProtocol) with a controller backed by the
cpython engine's End board objects, served by cellchain.client.AppSocketServer, polled from the
simulation loop (single-threaded, so it needs no lock). Connect with
``cellchain --socket 127.0.0.1:P status``.
"""
from sim import paths  # noqa: F401
from core import settings as cs


class SimController:
    """The ``ctl`` the protocol handler expects, on the End board of a running simulation."""

    def __init__(self, sim):
        self.sim = sim
        from core import version
        self.firmware_version = version.FIRMWARE_VERSION
        self._last = (None, None, None)

    def _objs(self):
        objs = self.sim.fw.chain.end_objects()
        if objs[1] is not None:
            self._last = objs
        return self._last

    @property
    def snap(self):
        return self._objs()[0]

    @property
    def brain(self):
        return self._objs()[1]

    @property
    def settings(self):
        return self._objs()[2]

    def apply_setting(self, name, value):
        return self.sim.fw.apply_setting(name, value)

    def set_password_hash(self, salt, hash_):
        s = self.settings
        s.pw_salt, s.pw_hash = salt, hash_
        import os
        cs.save(os.path.join(self.sim.end.data_dir, "settings.json"), s)
        return None

    def select_preset(self, chemistry):
        return self.sim.fw.apply_setting("preset", chemistry)

    def set_mode(self, mode):
        return self.sim.fw.apply_setting("mode", mode)

    def zero_current(self):
        b = self.brain
        r = b.zero_current() if b is not None else "End board has no power"
        return r if isinstance(r, str) else None


class AppPort:
    def __init__(self, sim, port):
        from cellchain.client import AppSocketServer
        from core.app_protocol import AppProtocol
        self.ctl = SimController(sim)
        self.app = AppProtocol(self.ctl)
        self.srv = AppSocketServer(self.app, "127.0.0.1", port)
        self.port = self.srv.port
        sim.cycle_hooks.append(self.cycle)

    def cycle(self, dt_ms):
        self.srv.poll(0.0)
        self.app.tick(dt_ms)
        self.app.stream_round()

    def close(self):
        self.srv.close()


def serve(sim, port):
    if sim.engine_name != "cpython":
        print("app port: only with --engine cpython (the micropython engine keeps the End board in its process)")
        return None
    return AppPort(sim, port)
