"""Evaluation: lm-eval model classes, local task YAMLs, code-execution sandbox.

Importing the package registers the lm-eval model classes (``tide_bd3lm``, ``tide_llada2``,
``tide_wedlm``, ``tide_ar``) with lm-eval's registry.
"""

from tide.eval import models  # noqa: F401  (registers the model classes)
