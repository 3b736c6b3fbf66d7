"""Classification metrics on torch tensors: confusion matrix, Macro-F1 (the headline), accuracy.

Written with `torch.bincount` rather than imported from scikit-learn: sklearn takes ~4 s to import on
our 2-core machines, paid by every fresh sweep worker; tests check these against sklearn.
"""

from __future__ import annotations

import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts; rows are true classes, columns predictions (sklearn's layout)."""
    idx = y_true.long().view(-1) * num_classes + y_pred.long().view(-1)
    return torch.bincount(idx, minlength=num_classes**2).view(num_classes, num_classes).cpu()


def per_class_f1(cm: torch.Tensor) -> torch.Tensor:
    tp = cm.diag().double()
    denom = cm.sum(0).double() + cm.sum(1).double()  # (tp + fp) + (tp + fn)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


def macro_f1(cm: torch.Tensor) -> float:
    """Mean F1 over the classes present in the labels or the predictions (sklearn's 'macro')."""
    present = (cm.sum(0) + cm.sum(1)) > 0
    return float(per_class_f1(cm)[present].mean()) if present.any() else 0.0


def accuracy(cm: torch.Tensor) -> float:
    total = int(cm.sum())
    return float(cm.diag().sum()) / total if total else 0.0
