"""`turnover --chart`: the last 12 months' turnover against the tier thresholds and the minimum."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from agent.economics.program import Program
from agent.economics.rules import Month
from agent.errors import InputError

FORMATS = (".png", ".svg")


def draw_turnover_chart(
    history: list[tuple[Month, Decimal]], program: Program, path: Path, running: Month | None = None
) -> Path:
    """Bars per month (under the minimum in red), a dashed line per tier threshold. PNG or SVG by suffix.

    `running`: the month still under way, labelled "so far" (its bar is not a month's final turnover).
    """
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"--chart {path}: write a .png or .svg file name")
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot

    labels = [f"{month}\n(so far)" if month == running else str(month) for month, _ in history]
    values = [float(turnover) for _, turnover in history]
    minimum = float(program.minimum_turnover)
    figure, axes = pyplot.subplots(figsize=(10, 5), dpi=110)
    try:
        colors = ["#c0392b" if value < minimum else "#2e86c1" for value in values]
        bars = axes.bar(labels, values, color=colors)
        axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=8, padding=2)
        top = max(values + [minimum]) * 1.25 or 1
        for index, tier in enumerate(program.tiers):
            level = float(tier.min_turnover)
            if level > top and index:
                continue  # thresholds far above the partner's turnover would flatten the bars
            axes.axhline(level, linestyle="--", linewidth=1, color="#7f8c8d")
            axes.text(
                1.01,
                level,
                f"{tier.discount:g} % from {level:g}",
                va="center",
                ha="left",
                fontsize=8,
                color="#34495e",
                transform=axes.get_yaxis_transform(),
            )
        axes.set_ylim(0, top)
        axes.set_ylabel(f"turnover ({program.turnover_basis} prices, {program.currency})")
        axes.set_title(
            f"ISPmanager 6 turnover, last {len(labels)} months: red bars are under the {minimum:g} "
            f"{program.currency} minimum"
        )
        axes.tick_params(axis="x", labelrotation=45)
        figure.tight_layout()
        try:
            figure.savefig(path)
        except OSError as error:
            raise InputError(f"--chart {path}: cannot write: {error.strerror or error}") from None
    finally:
        pyplot.close(figure)
    return path
