"""Gated fusion: g = sigmoid(W[a;v] + b) mixes audio and video; b sets the gate's starting value."""

from ray import tune

from search_spaces.common import MODALITY_DROPOUT, OPTIMISER, SPECAUGMENT, space

GATE = {
    # The gate's initial weight on audio. The guide starts it at 0.3 (leaning to video, the stronger
    # modality on RAVDESS); search around that, from strongly video-leaning to even.
    "gate_bias": tune.uniform(0.1, 0.5),
}

SPACE = space("gated", OPTIMISER, SPECAUGMENT, MODALITY_DROPOUT, GATE)
