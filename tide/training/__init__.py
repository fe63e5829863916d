"""Training: the loop and its config (:mod:`~tide.training.loop`), the trainers of the baselines'
and teachers' objectives (:mod:`~tide.training.trainers`), the SFT and pretraining rows and their
collator (:mod:`~tide.training.data`), the family curriculum (:mod:`~tide.training.curriculum`), and
the stages that train the baselines and teachers (:mod:`~tide.training.recipes`). Distillation's
counterparts live in :mod:`tide.distill`.
"""
