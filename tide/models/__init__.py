"""Models: the BD3LM student (Qwen3 used as block diffusion) and the two diffusion teachers."""
