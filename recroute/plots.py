"""Figures only: each function takes computed results and writes one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np


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
    fig.savefig(out, dpi=130)
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
