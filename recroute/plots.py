"""Figures only: each function takes computed results and writes one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RecrouteError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, ax, xlabel: str, ylabel: str, title: str, out) -> Path:
    """Label, legend and grid every figure the same way, then write it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = Path(out)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=130)
    except OSError as exc:  # checked before the work started; the disk can still fill or the folder go
        raise RecrouteError(f"{out}: cannot write the figure ({exc.strerror or exc}).") from None
    finally:
        _pyplot().close(fig)
    return out


def plot_scaling(curve: dict, title: str, out) -> Path:
    """r_o(p) against pool size, one line per p, and the best single model dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = curve["sizes"]
    for p, row in zip(curve["ps"], curve["ro"]):
        ax.plot(sizes, row, marker="o", ms=3, label=f"r_o({p:g})")
    ax.plot(sizes, curve["bsm"], "k--", label="best single model")
    ax.set_xscale("log" if max(sizes) > 20 else "linear")
    return _save(fig, ax, "candidate pool size m", "mean score μ", title, out)


def plot_strong_calls(curves: dict, weak_quality: float, strong_quality: float, labels: tuple[str, str],
                      title: str, out) -> Path:
    """Quality against the fraction of calls sent to the strong LLM, one line per router."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (fractions, quality) in curves.items():
        ax.plot(100 * np.asarray(fractions), quality, label=name)
    ax.axhline(strong_quality, color="k", ls="--", lw=1, label=f"strong: {labels[0]}")
    ax.axhline(weak_quality, color="grey", ls=":", lw=1, label=f"weak: {labels[1]}")
    return _save(fig, ax, "calls to the strong LLM (%)", "mean score", title, out)


def plot_cost_quality(result: dict, title: str, out) -> Path:
    """Mean quality against mean cost per query: each router's λ sweep (the non-decreasing hull, averaged
    over seeds on a common cost grid), the oracle frontier, and every single LLM as a labelled point."""
    from .metrics import quality_hull

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = result["rows"]
    every = np.concatenate([r["cost"] for r in rows] + [result["single_cost"]])
    grid = np.geomspace(max(every[every > 0].min(), 1e-12), every.max(), 200)
    for name in dict.fromkeys(r["router"] for r in rows):
        hulls = [np.interp(grid, *quality_hull(r["cost"], r["quality"])) for r in rows if r["router"] == name]
        style = {"color": "k", "ls": "--"} if name == "oracle" else {}
        ax.plot(grid, np.mean(hulls, axis=0), label=name, **style)
    ax.scatter(result["single_cost"], result["single_quality"], color="grey", s=14, zorder=3, label="single LLMs")
    for name, x, y in zip(result["models"], result["single_cost"], result["single_quality"]):
        ax.annotate(str(name).split("/")[-1], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    return _save(fig, ax, "mean cost per query ($, log scale)", "mean score", title, out)
