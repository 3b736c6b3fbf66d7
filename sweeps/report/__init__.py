"""The sweep report: rank every fusion method against video-only, with the evidence a paper needs.

    python -m sweeps.report runs/NAME                       # one finished sweep (any methods)
    python -m sweeps.report runs/A runs/B --folds 4 --seeds 3 --wandb
    python -m sweeps.run all                                # sweeps every method, then writes this report

For each method the best configuration is the sweep trial with the highest validation Macro-F1 (test
clips never choose anything: sweep trials are never evaluated on test). That score is optimistic: it
was picked as the maximum of many. So each best configuration is retrained over k folds of actors
and several seeds, in parallel on Ray, and evaluated on each fold's held-out actors: every actor is a
test actor in exactly one fold (never seen in its training or validation), except the sweep's
validation actors, on which the configuration was chosen: they validate every fold and score none.
Methods are ranked by the paired difference to video-only on the same fold and seed, with a Wilcoxon
signed-rank test.

Writes OUT/report.html (self-contained), OUT/report.parquet (one row per method x variant x fold x
seed), OUT/summary.json and OUT/figures/*.png; with --wandb, a W&B run of job type `report`. Finished
confirmation runs are kept in OUT/runs/: a report that is stopped and started again reruns nothing
that finished.

The package, by layer: `selection` (reading the sweeps, choosing, planning), `confirm` (the Ray
runs), `stats` (pure functions: ranking, paired tests, checklist), `page` (figures and the HTML
template), `build` (putting them together: `make_report`), `__main__` (the command line).
"""
