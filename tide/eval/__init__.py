"""Evaluation: lm-eval model classes, local task YAMLs, code-execution sandbox."""
