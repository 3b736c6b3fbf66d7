"""The names every layer gives the validation score: fit's history and results, Tune's searcher and
ASHA, W&B, results.parquet and the report. No imports: the sweep driver reads these without torch.

Sweeps maximise OBJECTIVE, not the epoch's score: it is the score of the weights fit keeps (best.pt)
and tests, and one noisy epoch on a small validation set does not sink a trial.
"""

EPOCH_VAL_F1 = "val/f1"  # one epoch's validation Macro-F1; in fit's results, the best epoch's
OBJECTIVE = "best/val_f1"  # the best epoch's validation Macro-F1 so far, reported every epoch
MODE = "max"  # OBJECTIVE is better higher (Tune's mode)
OBJECTIVE_COLUMN = "best_val_f1"  # OBJECTIVE as a results.parquet column
# What a trial's model costs, reported by every trial of a sweep that minimises it beside OBJECTIVE
# (`--objectives f1,params,...`), as results.parquet columns: the metric name with `/` as `_`.
COSTS = {
    "params": "cost/params",  # parameters
    "flops": "cost/flops",  # floating-point operations of one clip's forward pass (torch's FlopCounterMode)
    "latency": "cost/latency_ms",  # milliseconds per clip, one clip at a time, on the trial's device
}
OBJECTIVES = ("f1", *COSTS)  # f1 is OBJECTIVE, maximised; the costs are minimised
