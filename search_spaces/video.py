"""Video-only, the baseline every fusion method is ranked against: no audio, so no SpecAugment."""

from search_spaces.common import OPTIMISER, space

SPACE = space("video", OPTIMISER)
