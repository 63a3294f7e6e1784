"""``python -m sim run|demo`` - the virtual pack's command line (docs/virtual-pack.md)."""
import argparse
import os
import signal
import sys
import time

from sim import paths  # noqa: F401

GATEWAY_PROFILES = ("victron", "pylon", "pylon13", "sma")


def _build(args, sc):
    from sim.engine import Simulation
    return Simulation(sc, engine=args.engine, seed=args.seed, trace=args.trace, extout=args.extout,
                      realtime=args.realtime, gateway=args.gateway)


def _serve_app(sim, port):
    """Serve the End board's app protocol on a local TCP port."""
    from sim.app_server import serve
    srv = serve(sim, port)
    print("app protocol on 127.0.0.1:%d - connect with: cellchain --socket 127.0.0.1:%d status"
          % (srv.port, srv.port))
    return srv


class Terminated(Exception):
    """SIGTERM arrived: stop the run as Ctrl-C does (trace closed, engine and app port shut)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _gateway_text(rec):
    from sim.gateway import gateway_text
    return gateway_text(rec)


def cmd_run(args):
    from sim import scenario
    try:
        sc = scenario.load(args.scenario, cells=args.cells, chemistry=args.chemistry)
    except scenario.ScenarioError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    sim = _build(args, sc)
    srv = _serve_app(sim, args.app_port) if args.app_port else None
    sim.keep_history = bool(args.plot)
    t0 = time.monotonic()
    last = [0]

    def progress(s, rec):
        if args.quiet:
            return
        if rec["t"] - last[0] >= args.every:
            last[0] = rec["t"]
            print("t=%6d s  pack %7.3f V  %+8.2f A  SoC true %5.1f %%  BMS %s  charge %s  load %s  %s%s" % (
                rec["t"], rec["pack_v"], rec["current"], rec["soc_true_pack"],
                "-" if rec["soc_est"] is None else "%5.1f %%" % rec["soc_est"],
                "ON " if rec["charge_allowed"] else "off", "ON " if rec["load_allowed"] else "off",
                ",".join(rec["alarms"]), _gateway_text(rec)))
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sim.run(duration_s=args.duration, on_second=progress)
    except KeyboardInterrupt:
        print("interrupted")
    except Terminated:
        print("terminated (SIGTERM)")
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if srv is not None:
            srv.close()
    if args.plot and sim.history:
        from sim.view import plot
        plot(sim.history, args.plot, "%s (%d cells %s)" % (sc.name, sc.cells, sc.chemistry))
        print("plot: %s" % args.plot)
    print("simulated %d s in %.1f s wall time (engine %s, link %s)%s%s" % (
        sim.t_ms // 1000, time.monotonic() - t0, args.engine, getattr(sim.fw, "link", "?"),
        "; trace: %s" % args.trace if args.trace else "", "; extout: %s" % args.extout if args.extout else ""))
    return 0


def cmd_demo(args):
    from sim.demo import run_demo
    return run_demo(args)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim", description="cellchain virtual pack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a scenario")
    r.add_argument("--scenario", default="charge_full", help="scenario file or name in sim/scenarios/")
    r.add_argument("--cells", type=int, default=None, help="override the scenario's cell count")
    r.add_argument("--chemistry", default=None, help="lifepo4, lto, nmc or nca (overrides the scenario)")
    r.add_argument("--engine", choices=("cpython", "micropython"), default="cpython")
    r.add_argument("--trace", default=None, help="write the JSON-lines trace here")
    r.add_argument("--extout", default=None, help="write the End board's extended-output bytes here")
    r.add_argument("--realtime", action="store_true", help="one simulated second per second")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--duration", type=float, default=None, help="seconds (default: the scenario's)")
    r.add_argument("--app-port", type=int, default=None, help="serve the app protocol on this TCP port")
    r.add_argument("--plot", default=None, help="write a PNG plot here")
    r.add_argument("--every", type=int, default=60, help="progress line every N simulated seconds")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--gateway", choices=GATEWAY_PROFILES, default=None,
                   help="add the gateway board and a virtual inverter on CAN (docs/gateway.md)")
    r.set_defaults(fn=cmd_run)
    d = sub.add_parser("demo", help="16-cell LiFePO4: charge to full, discharge to empty (make sim)")
    d.add_argument("--engine", choices=("cpython", "micropython"), default="cpython")
    d.add_argument("--out", default=os.path.join("out", "sim-demo.png"))
    d.add_argument("--trace", default=os.path.join("out", "sim-demo.jsonl"))
    d.add_argument("--no-live", action="store_true", help="no live view (plain progress lines)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--app-port", type=int, default=8123,
                   help="serve the app protocol here for the cellchain CLI (default 8123; -1: off)")
    d.add_argument("--dashboard-port", type=int, default=8124,
                   help="serve the dashboard here (default 8124; -1: off)")
    d.add_argument("--history", default=os.path.join("out", "sim-demo-history.sqlite"),
                   help="the dashboard's history file")
    d.add_argument("--gateway", choices=GATEWAY_PROFILES, default=None,
                   help="the gateway board speaks this CAN profile to a virtual inverter (victron: an "
                        "MPPT + Multi that obeys CVL only; pylon: a Deye) - closed-loop CVL/CCL/DCL")
    d.set_defaults(fn=cmd_demo)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
