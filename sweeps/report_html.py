"""The report's figures (matplotlib, PNG) and its one self-contained HTML page (figures inlined)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN
from sweeps import analysis as A
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


def _table(headers, rows, table_id: str | None = None) -> str:
    tid = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.pass{color:#176117;font-weight:600}td.fail{color:#a11;font-weight:600}
td.not-run{color:#777}.note{color:#555;font-size:13px}img{max-width:100%;margin:.3em .5em .3em 0}
code{background:#f3f3f3;padding:0 3px}
"""


def _held(meta: dict) -> str:
    held = meta.get("selection_actors")  # reports written before it existed lack it
    if not held:
        return ""
    who = f"actor{'s' if len(held) > 1 else ''} {', '.join(map(str, held))}"
    return f" (never {who}, whose validation clips chose the configurations)"


def render(summary: dict, figs: dict[str, Path]) -> str:
    meta = summary["meta"]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>emo-sweeps report</title><style>{CSS}</style>"]
    sweeps = ", ".join(s["name"] for s in meta["sweeps"])
    parts.append("</head><body><h1>Fusion methods against video-only</h1>")
    parts.append(
        f"<p class='note'>Sweeps {e(sweeps)} on {e(str(meta['data']))} ({meta['clips']} clips, "
        f"{meta['num_classes']} classes). Each method's best configuration was chosen on <b>validation</b> Macro-F1 "
        f"in the sweep (column <i>val Macro-F1 (selection)</i>: optimistic, the maximum of many trials), then "
        f"retrained over {meta['folds']} folds of actors x {meta['seeds']} seeds ({meta['runs']} runs) and "
        f"evaluated on each fold's held-out <b>test</b> actors{_held(meta)}. Δ is the paired difference to "
        f"video-only on the "
        f"same fold and seed; the Wilcoxon signed-rank test is over those pairs (seeds of one fold share test "
        f"actors, so the pairs are not fully independent: read p as a guide; the 95% interval is a bootstrap "
        f"over whole folds, which allows for that). Written {e(meta['created'])}; "
        f"the runs trained for {duration(meta['run_seconds'])} in total; writing this report took "
        f"{duration(meta['seconds'])} (finished runs are read back, not retrained).</p>"
    )
    if meta.get("selection_note"):
        parts.append(f"<p class='note'><b>Note:</b> {e(meta['selection_note'])}.</p>")
    parts.append("<h2>Ranking</h2>")
    parts.append(_table(RANKING_COLUMNS, [ranking_cells(line) for line in summary["ranking"]], "ranking"))
    for k in ("ranking", "deltas"):
        if k in figs:
            parts.append(_img(figs[k], k))

    parts.append("<h2>Checklist</h2><table id='checklist'><thead><tr><th>item</th><th>result</th><th>evidence</th>"
                 "</tr></thead><tbody>")  # fmt: skip
    for c in summary["checklist"]:
        cls = c["status"].replace(" ", "-")
        parts.append(
            f"<tr><td>{e(c['item'])}</td><td class='{cls}'>{e(c['status'])}</td><td>{e(c['detail'])}</td></tr>"
        )
    parts.append("</tbody></table>")

    parts.append("<h2>Every variant</h2>")
    parts.append(
        _table(
            ("method", "variant", "classes", "runs", "test Macro-F1", "test accuracy"),
            [
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
            "variants",
        )
    )
    parts.append("<h2>Per-fold difference to video-only (points, mean over seeds)</h2>")
    folds = list(range(meta["folds"]))
    fold_rows = []
    for line in summary["ranking"]:
        if line.get("per_fold_delta"):
            fold_rows.append([line["method"], *(points(line["per_fold_delta"].get(f)) for f in folds)])
    fa = meta.get("fold_actors") or []
    heads = [
        f"fold {f}" + (f" (test actors {', '.join(map(str, fa[f]['test']))})" if f < len(fa) else "") for f in folds
    ]
    parts.append(_table(["method", *heads], fold_rows, "per-fold") if fold_rows else "<p>No paired runs.</p>")

    parts.append("<h2>Selected configurations (by validation Macro-F1)</h2>")
    sel_rows = []
    for m, s in summary["selection"].items():
        params = ", ".join(f"{k}={short(v)}" for k, v in sorted(s["searched"].items()))
        sel_rows.append([m, s["sweep"], s["trial_id"], pct(s[OBJECTIVE_COLUMN]), s["best_epoch"], s["status"], params])
    parts.append(_table(("method", "sweep", "trial", "val Macro-F1", "best epoch", "status", "searched values"),
                        sel_rows, "selection"))  # fmt: skip

    parts.append("<h2>Training curves (confirmation runs, mean over folds and seeds)</h2>")
    parts += [_img(p, k) for k, p in figs.items() if k.startswith("curves-")]
    parts.append("<h2>Confusion matrices (test, summed over folds and seeds)</h2>")
    parts += [_img(p, k) for k, p in figs.items() if k.startswith("confusion-")]

    parts.append("<h2>Error cases: audio against video-only</h2>")
    err = summary.get("error_cases")
    if not err:
        parts.append("<p>Needs confirmed audio and video runs.</p>")
    else:
        parts.append(
            f"<p class='note'>{err['clips']} test clips (each tested in one fold); a clip counts as right for a "
            f"method when most seeds got it right.</p>"
        )
        er = [[n, len(v["audio_only_right"]), len(v["video_only_right"]), v["both_right"], v["both_wrong"]]
              for n, v in err["per_emotion"].items()]  # fmt: skip
        parts.append(_table(("emotion", "audio right, video wrong", "video right, audio wrong", "both right",
                             "both wrong"), er, "error-cases"))  # fmt: skip
        for n, v in err["per_emotion"].items():
            for k, label in (
                ("audio_only_right", "audio right, video wrong"),
                ("video_only_right", "video right, audio wrong"),
            ):
                if v[k]:
                    items = "".join(f"<li><code>{e(f)}</code></li>" for f in v[k])
                    parts.append(f"<details><summary>{e(n)}: {label} ({len(v[k])})</summary><ul>{items}</ul></details>")

    parts.append("<h2>Gate behaviour (gated)</h2>")
    gate = summary.get("gate")
    if not gate:
        parts.append("<p>No gated runs.</p>")
    else:
        lean = "still leans to video" if gate["leans_to_video"] else "no longer leans to video"
        parts.append(
            f"<p>Mean gate on audio on the test clips: <b>{gate['test_mean']:.3f}</b> (initial "
            f"{gate['initial'] if gate['initial'] is not None else '-'}): at the end it {lean}.</p>"
        )
        if "gate" in figs:
            parts.append(_img(figs["gate"], "gate"))

    parts.append("<h2>Hyperparameter importance (fANOVA over each sweep's trials)</h2>")
    parts.append(
        "<p class='note'>Optuna's fANOVA on the sweep objective (best validation Macro-F1; a trial ASHA pruned "
        "counts with its score when pruned, as the searcher saw it). Few trials make it rough.</p>"
    )
    parts += [_img(p, k) for k, p in figs.items() if k.startswith("importance-")]
    for m, why in summary["importance_notes"].items():
        parts.append(f"<p>{e(m)}: no importance ({e(why)}).</p>")

    if summary["failed_runs"]:
        parts.append("<h2>Failed runs</h2>")
        cols = ("method", "variant", "fold", "seed", "error")
        parts.append(_table(cols, [[f[k] for k in cols] for f in summary["failed_runs"]], "failed"))
    parts.append("</body></html>")
    return "\n".join(parts)
