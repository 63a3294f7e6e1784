"""``python -m sim demo`` (``make sim``): a 16-cell LiFePO4 pack charged to full, then discharged
to empty, in accelerated virtual time, with a live terminal view and a PNG plot in out/."""
import os
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
    if args.app_port is not None and args.app_port >= 0:
        from sim.app_server import serve
        try:
            srv = serve(sim, args.app_port)
        except OSError:
            srv = serve(sim, 0)          # the port is taken: any free one
        console.print("app protocol on 127.0.0.1:%d - while the demo runs, in another terminal: "
                      "[bold].venv/bin/cellchain --socket 127.0.0.1:%d watch[/]"
                      % (srv.port, srv.port))
    state = {"phase": "charge", "full_t": None, "empty_t": None, "refresh": 0.0}
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
            return rec["t"] - state["empty_t"] >= 120
        return False

    def on_second(s, rec):
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
    try:
        if args.no_live:
            sim.run(on_second=on_second, stop=stop)
        else:
            with Live(console=console, refresh_per_second=10, transient=False) as live:
                sim.run(on_second=on_second, stop=stop)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        if srv is not None:
            srv.close()
    path = plot(sim.history, args.out, "cellchain demo: 16 x 40 Ah LiFePO4 (%s engine)" % args.engine)
    wall = time.monotonic() - wall0
    h = sim.history[-1] if sim.history else None
    console.print("full at t=%s s, load relay opened (empty) at t=%s s; %d simulated s in %.1f s."
                  % (state["full_t"], state["empty_t"], sim.t_ms // 1000, wall))
    if h is not None:
        console.print("final: pack %.2f V, SoC true %.1f %%, BMS %.1f %%, alarms: %s"
                      % (h["pack_v"], h["soc_true_pack"], h["soc_est"] or 0, ", ".join(h["alarms"]) or "none"))
    console.print("plot: %s%s" % (path, "   trace: %s" % args.trace if args.trace else ""))
    return 0
