"""The report's figures (matplotlib, PNG) and its one self-contained HTML page (figures inlined)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np

from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN
from sweeps.report import stats as A
from sweeps.results import short

DPI = 80  # small files: the committed example report stays small


def pct(x, sd=None) -> str:
    """0.6123, 0.031 -> '61.2 ± 3.1' (percent); '-' for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.1f}" + ("" if sd is None else f" ± {100 * sd:.1f}")


def points(x, sd=None) -> str:
    """A Macro-F1 difference in percentage points, signed."""
    if x is None:
        return "-"
    return f"{100 * x:+.1f}" + ("" if sd is None else f" ± {100 * sd:.1f}")


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def pval(p) -> str:
    return "-" if p is None else f"{p:.3g}"


# ----------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from emo.paths import atomic_write

    fig.tight_layout()
    # A report killed mid-write leaves the previous figure, never half a PNG.
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    _plt().close(fig)
    return path


def figures(summary: dict, folder: Path) -> dict[str, Path]:
    """Every figure as a PNG under `folder`; returns name -> path, in the order the report shows them."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    out: dict[str, Path] = {}
    rank = [line for line in summary["ranking"] if line["test_f1"] is not None]
    names = summary["class_names"]
    if rank:
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rank)))
        y = np.arange(len(rank))[::-1]
        ax.barh(y, [line["test_f1"] for line in rank], xerr=[line["test_f1_std"] or 0 for line in rank],
                color="#4c72b0", alpha=0.85, label="confirmed test (mean ± sd)")  # fmt: skip
        sel = [(yy, line["selection_val_f1"]) for yy, line in zip(y, rank, strict=True) if line["selection_val_f1"]]
        if sel:
            ax.scatter([s for _, s in sel], [yy for yy, _ in sel], marker="D", color="#dd8452", zorder=3,
                       label="sweep val (selection)")  # fmt: skip
        base = next((line for line in rank if line["method"] == A.BASELINE), None)
        if base:
            ax.axvline(base["test_f1"], color="grey", ls="--", lw=1, label="video-only")
        ax.set_yticks(y, [line["method"] for line in rank])
        ax.set_xlabel("Macro-F1")
        ax.set_xlim(0, 1)
        ax.legend(loc="lower right", fontsize=7)
        out["ranking"] = _save(fig, folder / "ranking.png")

    with_delta = [line for line in summary["ranking"] if line.get("pairs")]
    if with_delta:
        fig, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * len(with_delta)))
        for i, line in enumerate(with_delta[::-1]):
            d = [100 * x for x in line["pair_deltas"]]
            ax.scatter(d, np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), s=14, color="#4c72b0", alpha=0.7)
            ax.plot([100 * line["delta"]] * 2, [i - 0.3, i + 0.3], color="black", lw=2)
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.set_yticks(range(len(with_delta)), [line["method"] for line in with_delta[::-1]])
        ax.set_xlabel("Macro-F1 minus video-only, points (one dot per fold x seed; bar = mean)")
        out["deltas"] = _save(fig, folder / "deltas.png")

    for m, c in summary["curves"].items():
        fig, axes = plt.subplots(1, 2, figsize=(7, 2.6))
        for k, style in (("train/loss", "-"), ("val/loss", "--")):
            if k in c:
                axes[0].plot(range(1, len(c[k]) + 1), c[k], style, label=k)
        for k, style in (("train/f1", "-"), (EPOCH_VAL_F1, "--")):
            if k in c:
                axes[1].plot(range(1, len(c[k]) + 1), c[k], style, label=k)
        axes[0].set_title(f"{m}: loss", fontsize=9)
        axes[1].set_title(f"{m}: Macro-F1", fontsize=9)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
        out[f"curves-{m}"] = _save(fig, folder / f"curves-{m}.png")

    for m, cm in summary["confusion"].items():
        cm = np.asarray(cm, dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(3.8, 3.4))
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{m} (all folds and seeds)", fontsize=9)
        out[f"confusion-{m}"] = _save(fig, folder / f"confusion-{m}.png")

    gate = summary.get("gate")
    if gate:
        fig, axes = plt.subplots(1, 2, figsize=(7, 2.6))
        for k, style in (("gate/train_mean", "-"), ("gate/val_mean", "--")):
            if k in gate["epochs"]:
                axes[0].plot(range(1, len(gate["epochs"][k]) + 1), gate["epochs"][k], style, label=k)
        if gate["initial"] is not None:
            axes[0].axhline(gate["initial"], color="grey", lw=1, ls=":", label="initial")
        axes[0].axhline(0.5, color="black", lw=0.8)
        axes[0].set_ylim(0, 1)
        axes[0].set_xlabel("epoch")
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_title("mean gate on audio (< 0.5: leans to video)", fontsize=9)
        axes[0].legend(fontsize=7)
        emo = list(gate["per_emotion"])
        axes[1].bar(range(len(emo)), [gate["per_emotion"][e] for e in emo], color="#55a868")
        axes[1].axhline(0.5, color="black", lw=0.8)
        axes[1].set_xticks(range(len(emo)), emo, rotation=60, fontsize=7)
        axes[1].set_ylim(0, 1)
        axes[1].set_title("gate on audio per emotion (test)", fontsize=9)
        out["gate"] = _save(fig, folder / "gate.png")

    for m, f in summary.get("front", {}).items():
        costs = sorted({c for t in f["trials"] for c in t["costs"]})
        if not costs:
            continue
        fig, axes = plt.subplots(1, len(costs), figsize=(3.6 * len(costs), 3), squeeze=False)
        for ax, c in zip(axes[0], costs, strict=True):
            every = [t for t in f["trials"] if c in t["costs"]]
            ax.scatter([t["costs"][c] for t in every], [t["val_f1"] for t in every], s=14, color="#bbb",
                       label="trials (val)")  # fmt: skip
            on = sorted((t for t in f["front"] if c in t["costs"]), key=lambda t: t["costs"][c])
            ax.plot([t["costs"][c] for t in on], [t["val_f1"] for t in on], "o-", color="#dd8452", ms=4,
                    label="Pareto front (val)")  # fmt: skip
            tested = [t for t in on if t["test_f1"] is not None]
            ax.errorbar([t["costs"][c] for t in tested], [t["test_f1"] for t in tested],
                        yerr=[t["test_f1_std"] or 0 for t in tested], fmt="s", color="#4c72b0", ms=4, capsize=2,
                        label="front, test (folds x seeds)")  # fmt: skip
            ax.set_xlabel(c.removeprefix("cost_"), fontsize=8)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_ylabel("Macro-F1", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(m, fontsize=9)
        out[f"front-{m}"] = _save(fig, folder / f"front-{m}.png")

    for m, imp in summary["importance"].items():
        keys = sorted(imp, key=imp.get)
        fig, ax = plt.subplots(figsize=(5, 0.5 + 0.3 * len(keys)))
        ax.barh(range(len(keys)), [imp[k] for k in keys], color="#8172b3")
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.set_xlabel("fANOVA importance")
        ax.set_title(f"{m}", fontsize=9)
        out[f"importance-{m}"] = _save(fig, folder / f"importance-{m}.png")
    return out


# ----------------------------------------------------------------------------- text and HTML
RANKING_COLUMNS = ("rank", "method", "runs", "val Macro-F1 (selection)", "test Macro-F1", "test accuracy",
                   "Δ vs video (points)", "95% CI", "Wilcoxon p", "wins")  # fmt: skip


def ranking_cells(line: dict) -> list[str]:
    """One ranking line as the strings the HTML table, the terminal and the README show."""
    ci = line.get("delta_ci95")
    wins = "-" if line.get("pairs") is None else f"{line['wins']}/{line['pairs']}"
    runs = f"{line['runs']}" + (f" ({line['failed']} failed)" if line.get("failed") else "")
    method = line["method"] + (" (recipe, not swept)" if line["variant"] == A.RECIPE else "")
    return [
        str(line["rank"]),
        method,
        runs,
        pct(line["selection_val_f1"]),
        pct(line["test_f1"], line["test_f1_std"]),
        pct(line["test_acc"], line["test_acc_std"]),
        "baseline" if line["method"] == A.BASELINE else points(line["delta"], line["delta_std"]),
        "-" if not ci else f"[{points(ci[0])}, {points(ci[1])}]",
        pval(line.get("p_value")),
        wins,
    ]


def text_table(summary: dict) -> str:
    """The ranking as a Markdown table (the terminal and the README)."""
    lines = ["| " + " | ".join(RANKING_COLUMNS) + " |", "|" + "---|" * len(RANKING_COLUMNS)]
    lines += ["| " + " | ".join(ranking_cells(line)) + " |" for line in summary["ranking"]]
    return "\n".join(lines)


def render(summary: dict, figs: dict[str, Path]) -> str:
    """The self-contained report page: `page.html.j2` (Jinja2, every value escaped) filled from the
    summary, the figures inlined as base64 PNGs."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True, undefined=jinja2.StrictUndefined
    )
    meta = summary["meta"]
    folds = list(range(meta["folds"]))
    fa = meta.get("fold_actors") or []
    held = meta.get("selection_actors")  # reports written before it existed lack it
    err = summary.get("error_cases")
    context = {
        "meta": meta,
        "sweeps": ", ".join(s["name"] for s in meta["sweeps"]),
        "held": f"actor{'s' if len(held) > 1 else ''} {', '.join(map(str, held))}" if held else "",
        "run_time": duration(meta["run_seconds"]),
        "report_time": duration(meta["seconds"]),
        "figures": {k: base64.b64encode(Path(p).read_bytes()).decode() for k, p in figs.items()},
        "ranking_columns": RANKING_COLUMNS,
        "ranking": [ranking_cells(line) for line in summary["ranking"]],
        "checklist": summary["checklist"],
        "variants": [
            (
                v["method"],
                v["variant"],
                v["num_classes"] or "-",
                v["runs"],
                pct(v["test_f1"], v["test_f1_std"]),
                pct(v["test_acc"], v["test_acc_std"]),
            )
            for v in summary["variants"]
        ],  # fmt: skip
        "per_fold_headers": [
            "method",
            *(
                f"fold {f}" + (f" (test actors {', '.join(map(str, fa[f]['test']))})" if f < len(fa) else "")
                for f in folds
            ),
        ],  # fmt: skip
        "per_fold": [
            [line["method"], *(points(line["per_fold_delta"].get(f)) for f in folds)]
            for line in summary["ranking"]
            if line.get("per_fold_delta")
        ],
        "selection": [
            [
                m,
                s["sweep"],
                s["trial_id"],
                pct(s[OBJECTIVE_COLUMN]),
                s["best_epoch"],
                s["status"],
                ", ".join(f"{k}={short(v)}" for k, v in sorted(s["searched"].items())),
            ]
            for m, s in summary["selection"].items()
        ],  # fmt: skip
        "errors": err,
        "error_rows": [
            [n, len(v["audio_only_right"]), len(v["video_only_right"]), v["both_right"], v["both_wrong"]]
            for n, v in (err["per_emotion"].items() if err else ())
        ],
        "gate": summary.get("gate"),
        "importance_notes": summary["importance_notes"],
        "failed": [[f[k] for k in ("method", "variant", "fold", "seed", "error")] for f in summary["failed_runs"]],
        "front_costs": (
            costs := sorted({c for f in summary.get("front", {}).values() for t in f["front"] for c in t["costs"]})
        ),  # fmt: skip
        "front": [
            [
                m,
                t["trial_id"],
                t["variant"],
                pct(t["val_f1"]),
                *(short(t["costs"].get(c)) for c in costs),
                pct(t["test_f1"], t["test_f1_std"]),
                t["runs"],
            ]
            for m, f in summary.get("front", {}).items()
            for t in f["front"]
        ],  # fmt: skip
    }
    return env.get_template("page.html.j2").render(context)
