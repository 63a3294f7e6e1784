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
from sim.gateway import gateway_text

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
    gateway = getattr(args, "gateway", None)
    sim = Simulation(sc, engine=args.engine, seed=args.seed, trace=args.trace, gateway=gateway)
    console = Console()
    console.print("[bold]cellchain virtual pack[/]: 16 LiFePO4 cells, real firmware (%s engine, link %s). "
                  "Charging to full, then discharging to empty. Ctrl-C stops." % (args.engine, sim.fw.link))
    if gateway:
        console.print("gateway: %s CAN profile to a virtual %s inverter, closed-loop CVL/CCL/DCL from the "
                      "highest cell (docs/gateway.md)" % (gateway, sim.gateway.inverter.kind))
    srv = None
    dash = None
    if args.app_port is not None and args.app_port >= 0:
        from sim.app_server import serve
        moved = ""
        try:
            srv = serve(sim, args.app_port)
        except OSError:
            srv = serve(sim, 0)          # the port is taken: any free one
            moved = " (%d is taken, so the port moved: use these commands, not the README's)" % args.app_port
        console.print("app protocol on 127.0.0.1:%d until Ctrl-C%s - in another terminal:\n"
                      "  [bold].venv/bin/cellchain --socket 127.0.0.1:%d watch[/]\n"
                      "  [bold].venv/bin/cellchain --socket 127.0.0.1:%d status[/]"
                      % (srv.port, moved, srv.port, srv.port), soft_wrap=True)
        if args.dashboard_port is not None and args.dashboard_port >= 0:
            dash = start_dashboard(sim, srv.port, args.dashboard_port, args.history, console)
    state = {"phase": "charge", "full_t": None, "empty_t": None, "refresh": 0.0, "live_wall": None}
    wall0 = time.monotonic()

    def stop(s, rec):
        ov = "over_voltage" in rec["alarms"]
        if ov and not state.get("ov"):
            state["vmax_trips"] = state.get("vmax_trips", 0) + 1
        state["ov"] = ov
        if s.gateway is not None and state["full_t"] is not None:
            # the gateway demo kills the End board for a minute once the load runs: the
            # inverter must stop on the gateway's stop set / its own timeout within 3 s
            end_i = len(s.boards) - 1
            if state.get("kill_t") is None and rec["t"] >= state["full_t"] + 300:
                state["kill_t"] = rec["t"]
                s.fw.power(end_i, False)
                console.print("t=%d s: the End board is switched off (gateway and inverter must stop)" % rec["t"])
            elif state.get("kill_t") is not None and not state.get("revived") and rec["t"] >= state["kill_t"] + 60:
                state["revived"] = True
                s.fw.power(end_i, True)
                console.print("t=%d s: End board back on; inverter stopped %s after it went off" % (
                    rec["t"], "-" if s.gateway.stop_after_end_death_s is None
                    else "%.1f s" % s.gateway.stop_after_end_death_s))
        if state["phase"] == "charge":
            if rec.get("soc_calibrated") and not rec["charge_allowed"] and (rec["soc_est"] or 0) >= 99.9:
                state["phase"] = "discharge"
                state["full_t"] = rec["t"]
                s.charger.schedule = power.Schedule([], default=False)
                s.load.schedule = power.Schedule([], default=True)
        elif state["phase"] == "discharge" and not rec["load_allowed"] and not (
                state.get("kill_t") is not None and rec["t"] < state["kill_t"] + 300):   # End off and restarting
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
            console.print("t=%5d s %-9s pack %.2f V %+6.1f A SoC %.1f %% (BMS %s) charge %s load %s %s%s" % (
                rec["t"], state["phase"], rec["pack_v"], rec["current"], rec["soc_true_pack"], rec["soc_est"],
                "ON" if rec["charge_allowed"] else "off", "ON" if rec["load_allowed"] else "off",
                ",".join(rec["alarms"]), gateway_text(rec)), markup=False)

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
    if sim.gateway is not None:
        g = sim.gateway
        console.print("gateway: V-max trips %d, top cell at most %+d mV from the target, inverter stopped "
                      "%s after the End board's last packet" % (
                          state.get("vmax_trips", 0), g.top_over_target_mv,
                          "-" if g.stop_after_end_death_s is None else "%.1f s" % g.stop_after_end_death_s))
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
        def connect():
            return client.Client(client.SocketTransport("127.0.0.1", app_port), timeout_s=10.0)
        self.link = pack_link.PackLink(connect(), connect=connect)
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
        console.print("dashboard not available (%s): make venv" % e)
        return None
    console.print("dashboard: [bold]%s[/] (password 1234, the page asks for your own at the first login; "
                  "history in %s)" % (d.url, history_path))
    return d
