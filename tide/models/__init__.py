"""Models: the BD3LM student (Qwen3 used as block diffusion) and the two diffusion teachers.

Importing the package registers all three with transformers' Auto classes (``a2d-qwen3``,
``llada2_moe``, ``wedlm``), so ``AutoConfig.for_model`` / ``AutoModel*.from_pretrained`` know them.
"""

from tide.models import llada2, student, wedlm  # noqa: F401  (each registers its model type)
