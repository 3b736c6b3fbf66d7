"""Does fusion beat each stream alone on the demo set? Test Macro-F1 of audio, video and gated (and any
other methods asked for) on held-out actors, over several seeds.

    uv run python -m benchmarks.fusion_demo                          # audio, video, gated; 3 seeds
    uv run python -m benchmarks.fusion_demo --methods audio video late concat gated xattn --seeds 0

The demo set is designed so that each stream alone can reach about 50% (8 classes) and both together
all 8 emotions (README, "The demo set"). Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import report, table
from emo.config import FUSIONS, TrainConfig
from emo.data import load_data
from emo.train import fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["audio", "video", "gated"], choices=FUSIONS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--video-backbone", default="light", choices=["light", "resnet18"])
    args = p.parse_args()

    base = TrainConfig(
        epochs=args.epochs,
        video_backbone=args.video_backbone,
        use_cosine_annealing=True,
        # SpecAugment scaled to the demo's 32-mel, 151-frame spectrograms (20/40 is sized for 64 x 351)
        freq_mask=6,
        time_mask=20,
        early_stopping_patience=0,
    )
    data = load_data(base)
    rows, scores = [], {}
    for method in args.methods:
        f1s, accs, secs = [], [], []
        for seed in args.seeds:
            t = time.perf_counter()
            res = fit(base.replace(fusion=method, seed=seed), data)
            secs.append(time.perf_counter() - t)
            f1s.append(res["test/f1"])
            accs.append(res["test/acc"])
            print(f"{method} seed {seed}: test Macro-F1 {res['test/f1']:.3f} acc {res['test/acc']:.3f}", flush=True)
        scores[method] = statistics.mean(f1s)
        sd = statistics.stdev(f1s) if len(f1s) > 1 else 0.0
        rows.append(
            [
                method,
                f"{statistics.mean(f1s):.3f} +- {sd:.3f}",
                f"{statistics.mean(accs):.3f}",
                " ".join(f"{x:.3f}" for x in f1s),
                f"{statistics.mean(secs) / args.epochs:.1f}",
            ]
        )
    split = res["split"]
    body = table(["method", "test Macro-F1 (mean +- sd)", "test acc", "per seed", "s / epoch"], rows)
    notes = (
        f"Demo set (8 actors; actor split: train {split['train_actors']}, val {split['val_actors']}, "
        f"test {split['test_actors']}), `demo` features, {args.epochs} epochs, cosine LR, "
        f"video backbone `{args.video_backbone}`, light audio CNN, SpecAugment 6/20, seeds {args.seeds}."
    )
    report("Fusion vs single streams on the demo set", body, notes)


if __name__ == "__main__":
    main()
