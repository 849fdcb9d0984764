"""plot: the graphs of `nsml.report` as a PNG (matplotlib), for terminal users."""
from __future__ import annotations

from pathlib import Path

import click

from harness.core.errors import UserError

from . import main, pass_harness


@main.command("plot")
@click.argument("session")
@click.argument("metrics", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: SESSION with '/' as '-', .png).")
@click.option("-x", "--x", "x", type=click.Choice(["step", "time"]), default="step", show_default=True,
              help="X axis: the reported step, or seconds since the session started.")
@click.option("--smooth", type=click.FloatRange(0, 0.99), default=0.0, show_default=True,
              help="Exponential smoothing of each line (0: none).")
@pass_harness
def plot_cmd(lazy, session, metrics, output, x, smooth):
    """Plot METRICS (default: every one) that SESSION reported with nsml.report."""
    got = lazy.api().session_metrics(session, x, list(metrics) or None)
    series = got["series"]
    if not series:
        raise UserError(f"{session}: no reported metrics" + (f" named {', '.join(metrics)}" if metrics else ""))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(output or session.replace("/", "-") + ".png")
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.6 * len(series)), squeeze=False)
    for ax, (key, line) in zip(axes[:, 0], series.items()):
        ys, acc = [], None
        for y in line["y"]:
            acc = y if acc is None else smooth * acc + (1 - smooth) * y
            ys.append(acc)
        ax.plot(line["x"], ys, linewidth=1.2)
        ax.set_title(key, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step" if x == "step" else "seconds since start")
    fig.suptitle(f"{got['session']} ({got['status']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    cut = f" (the first {len(series)} of its {got['metrics']})" if got.get("metrics", 0) > len(series) else ""
    click.echo(f"Plot of {len(series)} metric(s){cut} of {got['session']} is written to {target}")
