"""The eight task families; ``FAMILY_CLASSES`` maps each family name to its implementation."""

from __future__ import annotations

from tide.world.families.bbh import Bbh
from tide.world.families.code import HumanEval, Mbpp
from tide.world.families.gsm8k import Gsm8k
from tide.world.families.hellaswag import HellaSwag
from tide.world.families.knowledge import Mmlu, MmluPro
from tide.world.families.math import Math

FAMILY_CLASSES = {cls.name: cls for cls in (Mmlu, MmluPro, HellaSwag, Gsm8k, Bbh, Math,
                                             HumanEval, Mbpp)}
