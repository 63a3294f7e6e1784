"""``python -m sim demo`` (``make sim``): a 16-cell LiFePO4 pack charged to full, then discharged
to empty, in accelerated virtual time, with a live terminal view and a PNG plot in out/. While it
runs the End board's app protocol is on 127.0.0.1:8123 and the dashboard (cellchain.dashboard) on
http://127.0.0.1:8124/; after the demo the pack goes on charging in real time, serving both,
until Ctrl-C."""
import os
import threading
import time

from sim import paths  # noqa: F401
from sim import power, scenario

DEMO = {
    "name": "demo",
    "description": "16 x 40 Ah LiFePO4: charge at 20 A to full, then discharge at 60 A to empty",
    "duration_s": 5 * 3600,
    "pack": {"cells": 16, "chemistry": "lifepo4", "capacity_ah": 40, "soc_pct": 80, "soc_spread_pct": 0.2,
             "capacity_spread_pct": 0.5},
    "charger": {"max_a": 20, "bulk_mv_per_cell": 3440},
    "load": {"a": 60, "schedule": [[0, False]]},
}


def run_demo(args):
    from rich.console import Console
    from rich.live import Live

    from sim.engine import Simulation
    from sim.view import plot, render

    sc = scenario.load(DEMO)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.trace:
        os.makedirs(os.path.dirname(os.path.abspath(args.trace)), exist_ok=True)
    sim = Simulation(sc, engine=args.engine, seed=args.seed, trace=args.trace)
    console = Console()
    console.print("[bold]cellchain virtual pack[/]: 16 LiFePO4 cells, real firmware (%s engine, link %s). "
                  "Charging to full, then discharging to empty. Ctrl-C stops." % (args.engine, sim.fw.link))
    srv = None
    dash = None
    if args.app_port is not None and args.app_port >= 0:
        from sim.app_server import serve
        try:
            srv = serve(sim, args.app_port)
        except OSError:
            srv = serve(sim, 0)          # the port is taken: any free one
        console.print("app protocol on 127.0.0.1:%d until Ctrl-C - in another terminal: "
                      "[bold].venv/bin/cellchain --socket 127.0.0.1:%d watch[/]"
                      % (srv.port, srv.port))
        if args.dashboard_port is not None and args.dashboard_port >= 0:
            dash = start_dashboard(sim, srv.port, args.dashboard_port, args.history, console)
    state = {"phase": "charge", "full_t": None, "empty_t": None, "refresh": 0.0, "live_wall": None}
    wall0 = time.monotonic()

    def stop(s, rec):
        if state["phase"] == "charge":
            if rec.get("soc_calibrated") and not rec["charge_allowed"] and (rec["soc_est"] or 0) >= 99.9:
                state["phase"] = "discharge"
                state["full_t"] = rec["t"]
                s.charger.schedule = power.Schedule([], default=False)
                s.load.schedule = power.Schedule([], default=True)
        elif state["phase"] == "discharge" and not rec["load_allowed"]:
            if state["empty_t"] is None:
                state["empty_t"] = rec["t"]
            if rec["t"] - state["empty_t"] >= 120:
                if srv is None:
                    return True
                go_live(s, rec)
        return False

    def go_live(s, rec):
        """Demo done: write the plot, then charge in real time and keep serving until Ctrl-C."""
        state["phase"] = "live"
        state["plot"] = plot(s.history, args.out, "cellchain demo: 16 x 40 Ah LiFePO4 (%s engine)" % args.engine)
        s.keep_history = False
        s.trace.close()                       # the trace holds the demo, not the hours after it
        s.charger.schedule = power.Schedule([], default=True)
        s.load.schedule = power.Schedule([], default=False)
        state["live_wall"] = time.monotonic() - rec["t"]
        console.print("demo done at t=%d s (plot %s); the pack now charges in real time, app port %d%s "
                      "serving until Ctrl-C" % (rec["t"], state["plot"], srv.port,
                                                 " and dashboard %s" % dash.url if dash else ""))

    def pace(s, rec):
        """Live phase: one simulated second per wall second, serving the app socket meanwhile."""
        deadline = state["live_wall"] + rec["t"]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not srv.wait(min(left, 0.05)):
                time.sleep(min(left, 0.05))   # the End board is off: nothing to serve

    def on_second(s, rec):
        if state["phase"] == "live":
            pace(s, rec)
        now = time.monotonic()
        if live is not None and now - state["refresh"] >= 0.1:
            state["refresh"] = now
            live.update(render(s, rec, "cellchain virtual pack - %s" % state["phase"]))
        elif live is None and rec["t"] % 300 == 0:
            console.print("t=%5d s %-9s pack %.2f V %+6.1f A SoC %.1f %% (BMS %s) charge %s load %s %s" % (
                rec["t"], state["phase"], rec["pack_v"], rec["current"], rec["soc_true_pack"], rec["soc_est"],
                "ON" if rec["charge_allowed"] else "off", "ON" if rec["load_allowed"] else "off",
                ",".join(rec["alarms"])))

    live = None
    duration_s = None if srv is None else 10 * 365 * 86400      # serving: until Ctrl-C
    try:
        if args.no_live:
            sim.run(duration_s=duration_s, on_second=on_second, stop=stop)
        else:
            with Live(console=console, refresh_per_second=10, transient=False) as live:
                sim.run(duration_s=duration_s, on_second=on_second, stop=stop)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        if dash is not None:
            dash.close()
        if srv is not None:
            srv.close()
    path = state.get("plot") or plot(sim.history, args.out,
                                     "cellchain demo: 16 x 40 Ah LiFePO4 (%s engine)" % args.engine)
    wall = time.monotonic() - wall0
    h = sim.history[-1] if sim.history else None
    console.print("full at t=%s s, load relay opened (empty) at t=%s s; %d simulated s in %.1f s."
                  % (state["full_t"], state["empty_t"], sim.t_ms // 1000, wall))
    if h is not None:
        console.print("final: pack %.2f V, SoC true %.1f %%, BMS %.1f %%, alarms: %s"
                      % (h["pack_v"], h["soc_true_pack"], h["soc_est"] or 0, ", ".join(h["alarms"]) or "none"))
    console.print("plot: %s%s" % (path, "   trace: %s" % args.trace if args.trace else ""))
    return 0


class _DemoDashboard:
    """The dashboard of ``make sim``: reads the virtual pack's app socket, history in virtual time."""

    def __init__(self, sim, app_port, port, history_path):
        from cellchain import client, dashboard, history, pack_link
        if os.path.exists(history_path):
            os.remove(history_path)                    # each demo starts a fresh history
        self.store = history.HistoryStore(history_path, retention_days=None)
        self.link = pack_link.PackLink(client.Client(client.SocketTransport("127.0.0.1", app_port),
                                                     timeout_s=10.0))
        t0 = time.time()
        self.dash = dashboard.Dashboard(self.link, self.store, port=port, interval_s=0.5,
                                        clock=lambda: t0 + sim.t_ms / 1000.0,
                                        transport_name="virtual pack 127.0.0.1:%d" % app_port)
        self.url = None

    def start(self, password):
        threading.Thread(target=self.link.login, args=(password,), daemon=True).start()
        try:
            self.dash.start()
        except OSError:
            self.dash.port = 0                         # the port is taken: any free one
            self.dash.start()
        self.url = self.dash.url
        return self

    def close(self):
        self.dash.close()
        self.link.close()
        self.store.close()


def start_dashboard(sim, app_port, port, history_path, console):
    """Start the dashboard on the demo's app socket and print its URL (None if it cannot run)."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(history_path)), exist_ok=True)
        d = _DemoDashboard(sim, app_port, port, history_path).start("1234")
    except ImportError as e:
        console.print("dashboard not available (%s): pip install -e '.[dashboard]'" % e)
        return None
    console.print("dashboard: [bold]%s[/] (password 1234; history in %s)" % (d.url, history_path))
    return d
