"""Live terminal view of the virtual pack (rich) and the matplotlib summary plot."""
import os

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _bar(v, lo, hi, width=24):
    if v is None:
        return Text("-" * width, style="dim")
    frac = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
    n = int(round(frac * width))
    style = "red" if frac >= 0.98 or frac <= 0.02 else ("yellow" if frac > 0.85 or frac < 0.1 else "green")
    return Text("#" * n + "." * (width - n), style=style)


def render(sim, rec, title="cellchain virtual pack"):
    """A rich renderable for one trace record."""
    s = sim._last_settings
    vmin, vbal, vmax = s["vmin_mv"] / 1000.0, s["vbal_mv"] / 1000.0, s["vmax_mv"] / 1000.0
    lo = vmin - 0.1
    hi = vmax + 0.05
    cells = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    cells.add_column("cell", justify="right")
    cells.add_column("V true", justify="right")
    cells.add_column("V meas", justify="right")
    cells.add_column("%.2f .. %.2f V (bal %.2f)" % (lo, hi, vbal))
    cells.add_column("bal")
    cells.add_column("degC", justify="right")
    cells.add_column("SoC", justify="right")
    for i in range(len(rec["v_true"])):
        vm = rec["v_meas"][i]
        cells.add_row(str(i + 1), "%.3f" % rec["v_true"][i], "-" if vm is None else "%.3f" % vm,
                      _bar(rec["v_true"][i], lo, hi),
                      Text("BAL", style="bold magenta") if rec["balancing"][i] else Text(""),
                      "%.1f" % rec["temp"][i], "%.1f%%" % rec["soc_true"][i])
    est = rec["soc_est"]
    head = Text()
    h, m = divmod(rec["t"] // 60, 60)
    head.append("t=%d:%02d:%02d  " % (h, m, rec["t"] % 60), style="bold")
    head.append("pack %.2f V  " % rec["pack_v"])
    head.append("current %+.2f A  " % rec["current"])
    head.append("SoC true %.1f %% / BMS %s  " % (rec["soc_true_pack"], "-" if est is None else "%.1f %%" % est))
    head.append("\n")
    head.append("CHARGE ", style="bold")
    head.append("ON " if rec["charge_allowed"] else "OFF", style="green" if rec["charge_allowed"] else "red")
    head.append("   LOAD ", style="bold")
    head.append("ON " if rec["load_allowed"] else "OFF", style="green" if rec["load_allowed"] else "red")
    head.append("   mode %s   charger %.1f A   load %.1f A" % (rec["mode"], rec["charger_a"], rec["load_a"]))
    head.append("\nalarms: ")
    head.append(", ".join(rec["alarms"]) if rec["alarms"] else "none",
                style="yellow" if rec["alarms"] else "green")
    g = rec.get("gw")
    if g:
        head.append("\ngateway (%s): " % g["profile"], style="bold")
        head.append("CVL %.1f V  CCL %.1f A  DCL %.1f A  %s  top-cell target %.3f V  " % (
            g["cvl_v"], g["ccl_a"], g["dcl_a"], g["mode"], g["target_v"]))
        head.append("inverter %s" % g["inverter"], style="green" if g["inverter_running"] else "red")
    return Panel(Group(head, cells), title=title)


def plot(history, path, title="cellchain virtual pack"):
    """Cell voltages, SoC true vs estimated and relay states over time -> PNG at path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not history:
        raise ValueError("nothing to plot")
    t = np.array([r["t"] for r in history]) / 3600.0
    v = np.array([r["v_true"] for r in history])
    soc_true = np.array([r["soc_true_pack"] for r in history])
    soc_est = np.array([np.nan if r["soc_est"] is None else r["soc_est"] for r in history])
    charge = np.array([1 if r["charge_allowed"] else 0 for r in history])
    load = np.array([1 if r["load_allowed"] else 0 for r in history])
    fig, ax = plt.subplots(3, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    ax[0].plot(t, v, linewidth=0.8)
    gw = [r.get("gw") for r in history]
    if any(gw):
        n = v.shape[1]
        cvl = np.array([np.nan if not g or not g["fresh"] else g["cvl_v"] / n for g in gw])
        target = np.array([np.nan if not g or not g["target_v"] else g["target_v"] for g in gw])
        ax[0].plot(t, cvl, color="black", linewidth=1.2, linestyle="--", label="gateway CVL / cells")
        ax[0].plot(t, target, color="red", linewidth=1.0, linestyle=":", label="top-cell target")
        ax[0].legend(loc="lower right")
    ax[0].set_ylabel("cell voltage (V)")
    ax[0].set_title(title)
    ax[0].grid(alpha=0.3)
    ax[1].plot(t, soc_true, label="SoC true (mean of cells)")
    ax[1].plot(t, soc_est, label="SoC estimated by the BMS", linestyle="--")
    ax[1].set_ylabel("SoC (%)")
    ax[1].legend(loc="best")
    ax[1].grid(alpha=0.3)
    ax[2].step(t, charge + 1.5, where="post", label="charge relay")
    ax[2].step(t, load, where="post", label="load relay")
    ax[2].set_yticks([0, 1, 1.5, 2.5], ["load off", "load on", "charge off", "charge on"])
    ax[2].set_xlabel("time (h)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
