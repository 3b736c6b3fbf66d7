"""Cross-attention fusion: audio steps attend to video frames and back, then pooled."""

from search_spaces.common import MODALITY_DROPOUT, OPTIMISER, SPECAUGMENT, space

SPACE = space("xattn", OPTIMISER, SPECAUGMENT, MODALITY_DROPOUT)
