"""Audio-only: the log-mel CNN (light or ResNet18) with SpecAugment."""

from search_spaces.common import OPTIMISER, SPECAUGMENT, space

SPACE = space("audio", OPTIMISER, SPECAUGMENT)
