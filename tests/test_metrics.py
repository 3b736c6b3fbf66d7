import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from emo.metrics import accuracy, confusion_matrix, macro_f1, per_class_f1


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_classes", [4, 8])
def test_metrics_equal_sklearn(seed, num_classes):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, 50)
    # a biased predictor that never predicts some classes: the zero-division cases matter
    p = np.where(rng.random(50) < 0.5, y, rng.integers(0, max(2, num_classes // 2), 50))
    cm = confusion_matrix(torch.tensor(y), torch.tensor(p), num_classes)
    assert cm.tolist() == sk_confusion(y, p, labels=list(range(num_classes))).tolist()
    assert macro_f1(cm) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert accuracy(cm) == pytest.approx(accuracy_score(y, p))
    expected = f1_score(y, p, average=None, labels=list(range(num_classes)), zero_division=0)
    np.testing.assert_allclose(per_class_f1(cm).numpy(), expected)
