"""tide: reproduction package for TIDE, cross-architecture distillation of diffusion LMs."""

__version__ = "0.1.0"
