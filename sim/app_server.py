"""The app protocol of the virtual End board on a local TCP port (``python -m sim run --app-port P``).

The End board's own handler answers: on the cpython engine the role's ``app``
(core.app_protocol.AppProtocol inside roles/end_app.EndServices, the same object BLE and USB
feed on a board); on the micropython engine a proxy that carries the bytes over the engine's
pipe to the handler inside the MicroPython process (sim/mp_engine.RemoteApp). Served by
cellchain.client.AppSocketServer, polled from the simulation loop (single-threaded, no lock).
Connect with ``cellchain --socket 127.0.0.1:P status``.

Like a radio link, the connections drop when the End board loses power or restarts, and no new
ones are taken while it is off (they wait in the listen backlog). A client that streams but
never reads fills only its own bounded output buffer and is then disconnected
(AppSocketServer.max_pending); the pack runs on."""
import time

from sim import paths  # noqa: F401

_BETWEEN_WALL_S = 0.02     # inside a slow cycle: serve the clients at most every 20 ms of wall time


class AppPort:
    def __init__(self, sim, port):
        from cellchain.client import AppSocketServer
        self.sim = sim
        self.app = None
        self.srv = AppSocketServer(None, "127.0.0.1", port)
        self.port = self.srv.port
        self._follow()
        sim.cycle_hooks.append(self.cycle)
        sim.idle_hooks.append(self.wait)
        sim.between_hooks.append(self.between)
        self._last_wall = 0.0

    def _follow(self):
        """Serve the End board's current app handler; a restarted board drops every client."""
        app = self.sim.fw.app()
        if app is not self.app:
            self._drop(list(self.srv.clients))
            self.app = app
            self.srv.app = app

    def _drop(self, socks):
        for s in socks:
            self.srv.forget(s)

    def cycle(self, dt_ms):
        """After every firmware cycle: move client bytes in (the handler answers at once on
        the cpython engine, with the next cycle on the micropython engine)."""
        self._follow()
        if self.app is None:
            return
        self.srv.poll(0.0)
        closed = getattr(self.app, "take_closed", None)
        if closed is not None:
            gone = set(closed())
            if gone:
                self._drop([s for s, slot in self.srv.clients.items() if slot in gone])

    def between(self):
        """Inside a cycle (cpython engine): a simulation slower than real time answers its
        clients within 20 ms of wall time, not once per cycle (issue 22)."""
        now = time.monotonic()
        if now - self._last_wall < _BETWEEN_WALL_S:
            return
        self._last_wall = now
        if self.app is not None and self.sim.fw.app() is self.app:
            self.srv.poll(0.0)

    def wait(self, timeout_s):
        """Wall-clock wait between cycles (--realtime): serve clients meanwhile."""
        if self.app is None:
            return False
        self.srv.poll(timeout_s)
        return True

    def close(self):
        self._drop(list(self.srv.clients))
        self.srv.close()


def serve(sim, port):
    return AppPort(sim, port)
