"""Training curves of a run: loss (and with --heldout the held-out loss, its best epoch marked),
speed and (with --eval-each-epoch) evaluation per epoch, drawn from the run's metrics.json into
one PNG. matplotlib is the `plot` extra."""

from __future__ import annotations

import json
import math
from pathlib import Path

from w2v_nce.atomic import atomic_path
from w2v_nce.errors import UserError


def read_history(run_dir: Path) -> dict:
    """The run's metrics.json, checked to hold a per-epoch history."""
    path = run_dir / "metrics.json" if run_dir.is_dir() else run_dir
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"'{path}' does not exist (give a run directory written by train)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"'{path}' cannot be read as JSON: {exc}") from None
    history = metrics.get("history") if isinstance(metrics, dict) else None
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        raise UserError(f"'{path}' has no per-epoch history (written by a run of an older version?)")
    return metrics


def plot_run(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Draw `run_dir`'s curves into `out` (default: RUN/training.png); return the file written."""
    run_dir = Path(run_dir)
    metrics = read_history(run_dir)
    try:
        import matplotlib
    except ImportError:
        raise UserError("plot needs matplotlib: pip install 'w2v-nce[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    history = metrics["history"]
    epochs = [h.get("epoch") for h in history]
    evaluated = [k for k in ("analogy", "ws353") if any(_number(h.get(k)) for h in history)]
    panels = 3 if evaluated else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), constrained_layout=True)
    fig.suptitle(f"{metrics.get('arch', '?')} / {metrics.get('loss', '?')} on {metrics.get('corpus', '?')}", fontsize=10)

    loss_ax = axes[0]
    words_per_epoch = (history[0].get("words") or 0) / max(epochs[0] or 1, 1)
    curve = [p for p in metrics.get("curve") or [] if isinstance(p, list) and len(p) == 2 and all(map(_number, p))]
    if curve and words_per_epoch:
        loss_ax.plot([w / words_per_epoch for w, _ in curve], [l for _, l in curve], color="0.6", lw=1,
                     label="per chunk")
    loss_ax.plot(epochs, [h.get("loss") for h in history], "o-", color="C0", label="epoch mean")
    loss_ax.set(xlabel="epoch", ylabel="training loss per example", title="loss")
    loss_ax.legend(fontsize=8)
    if any(_number(h.get("heldout")) for h in history):  # its own axis: cross-entropy is not the training loss
        held_ax = loss_ax.twinx()
        held_ax.plot(epochs, [h.get("heldout") if _number(h.get("heldout")) else math.nan for h in history], "s--",
                     color="C3", label="held-out")
        best = metrics.get("best_epoch")
        if best in epochs and _number(history[epochs.index(best)].get("heldout")):
            held_ax.plot([best], [history[epochs.index(best)]["heldout"]], "*", color="C3", markersize=14,
                         label=f"best: epoch {best} (vectors.txt)")
        measure = str(metrics.get("heldout_measure") or "loss").replace("_", " ")
        held_ax.set_ylabel(f"held-out {measure} per example", color="C3")
        held_ax.legend(fontsize=8, loc="center right")

    speed_ax = axes[1]
    speed_ax.bar(epochs, [(h.get("words_per_sec") or 0) / 1e6 for h in history], color="C1")
    speed_ax.set(xlabel="epoch", ylabel="million words / s", title="training speed")
    lr_ax = speed_ax.twinx()
    lr_ax.plot(epochs, [h.get("lr") for h in history], "k.--", lw=1)
    lr_ax.set_ylabel("learning rate at the epoch's end")

    if evaluated:
        eval_ax = axes[2]
        names = {"analogy": "analogy accuracy (restrict 30k)", "ws353": "WordSim-353 Spearman"}
        for i, key in enumerate(evaluated):
            eval_ax.plot(epochs, [h.get(key) if _number(h.get(key)) else math.nan for h in history], "o-",
                         color=f"C{i + 2}", label=names[key])
        eval_ax.set(xlabel="epoch", title="evaluation")
        eval_ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)

    target = Path(out) if out is not None else (run_dir if run_dir.is_dir() else run_dir.parent) / "training.png"
    with atomic_path(target, "plot") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
