"""The HF Trainer subclasses of the baselines and teachers, one per objective, each only computing
its loss (AR next token, BD3LM, the teachers' mask-slot and masked-diffusion forms), and the
mixins they share with the distillation trainer (:class:`tide.distill.trainer.DistillTrainer`): a
row order that depends on the global batch only, a precomputed order (a curriculum), noise seeded
by (seed, step, micro-batch) so that a resumed run redraws it.
"""

from __future__ import annotations

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from tide import diffusion
from tide.losses import causal_lm_ce
from tide.training.curriculum import FixedOrderSampler


class GlobalBatchMixin:
    """For our trainers: a row order that depends on the global batch only, not on how it is split
    over processes and accumulation steps.

    accelerate shards the batches of the (one, shared) sampler round-robin: process ``p`` of ``W``
    gets batches ``p, p+W, ...``, so optimizer step ``s`` reads batches ``s*W*GA ... (s+1)*W*GA - 1``
    of that sequence, as a single process with ``W*GA`` accumulation steps does. The stock
    length-grouped sampler groups by ``batch_size x GA`` (not x W); here it groups by the global
    batch, which is the stock sampler itself in a single process. Its permutation comes from the
    global torch RNG, seeded alike in every process by the Trainer. (At an epoch's end the two
    differ when the batches per epoch are not a multiple of W x GA: accelerate pads the last round.)
    """

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = self.train_dataset if train_dataset is None else train_dataset
        processes = self.args.world_size
        if processes > 1 and self.args.train_sampling_strategy == "group_by_length" \
                and train_dataset is not None:
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps * processes,
                dataset=train_dataset)
        return super()._get_train_sampler(train_dataset)


class OrderMixin(GlobalBatchMixin):
    """For our trainers: draw rows in a precomputed order when given one (a curriculum; built for
    the global batch by :func:`train`, so it shards like the length-grouped order)."""

    def __init__(self, *args, train_order: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_order = train_order

    def _get_train_sampler(self, train_dataset=None):
        if self.train_order is not None:
            return FixedOrderSampler(self.train_order)
        return super()._get_train_sampler(train_dataset)


def noise_seed(seed: int, step: int, micro: int) -> int:
    """Seed of the noise of micro-batch ``micro`` (1-based, global over processes) of ``step``."""
    return (seed * 1_000_003 + step * 1009 + micro) % (2**63)


class NoiseMixin(GlobalBatchMixin):
    """For our diffusion trainers: a noise generator seeded from (seed, global step, micro-batch), so
    resumed runs redraw the same noise; and losses that are per-micro-batch means.

    The micro-batch index is global: process ``p``'s ``k``-th micro-batch (``k`` = 1..GA) of a step
    is ``p * GA + k``, so ``W`` processes with GA accumulation steps draw the noise of one process
    with ``W * GA`` steps on the same batches (:class:`GlobalBatchMixin`); process 0 draws what a
    single process always drew."""

    # The loss ignores ``num_items_in_batch``: let the Trainer divide it by the gradient-accumulation
    # steps (its default would skip that for models whose forward takes ``**kwargs``, like Qwen3).
    # Under DDP the gradients are then averaged over processes: the same mean over micro-batches.
    loss_is_scaled_for_ga = False

    def noise_generator(self) -> torch.Generator:
        step = self.state.global_step
        if getattr(self, "_noise_step", None) != step:
            self._noise_step, self._micro = step, 0
        self._micro += 1
        micro = self.args.process_index * self.args.gradient_accumulation_steps + self._micro
        return torch.Generator().manual_seed(noise_seed(self.args.seed, step, micro))


class BD3LMTrainer(OrderMixin, NoiseMixin, Trainer):
    """BD3LM objective (bd3lm.md §2) on ``[xt ; x0]`` with the block-diffusion mask;
    ``loss_norm``: token / sequence / batch (:func:`tide.losses.bd3lm_ce`)."""

    def __init__(self, *args, mask_id: int, block_size: int, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_id, self.block_size, self.loss_norm = mask_id, block_size, loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        x0 = inputs["input_ids"]
        loss, aux = diffusion.bd3lm_loss(
            model, x0, inputs["labels"], mask_id=self.mask_id, block_size=self.block_size,
            generator=gen, norm=self.loss_norm,
        )
        return (loss, aux) if return_outputs else loss


class CausalLMTrainer(OrderMixin, Trainer):
    """Next-token objective for any of our architectures, through an explicit causal 4-D mask.

    The teachers' classes are bidirectional by default (LLaDA2) or take masks as given, so the AR
    phase of teacher preparation passes the causal mask itself and shifts the labels here.
    ``loss_norm``: token (the HF loss) / sequence / batch (:func:`tide.losses.causal_lm_ce`).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_norm = loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids, labels = inputs["input_ids"], inputs["labels"]
        length = ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        logits = model(input_ids=ids, attention_mask=causal[None, None]).logits
        loss = causal_lm_ce(logits, labels, norm=self.loss_norm)
        return (loss, {"logits": logits}) if return_outputs else loss


class MaskSlotTrainer(OrderMixin, Trainer):
    """No-shift next-token objective (:func:`tide.diffusion.mask_slot_loss`): the teachers' first
    phase when ``teachers.<k>.ar.objective`` is ``mask_slot``. ``loss_norm`` as for the others."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args, mask_id: int, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_id, self.loss_norm = mask_id, loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, aux = diffusion.mask_slot_loss(model, inputs["input_ids"], inputs["labels"],
                                             mask_id=self.mask_id, norm=self.loss_norm)
        return (loss, aux) if return_outputs else loss


class MaskedDiffusionTrainer(BD3LMTrainer):
    """Teacher objective: BD3LM, or with probability ``full_attention_prob`` per batch the MDLM
    objective with full bidirectional attention (how Pipeline A queries its teacher)."""

    def __init__(self, *args, full_attention_prob: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_attention_prob = full_attention_prob

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        if torch.rand((), generator=gen).item() >= self.full_attention_prob:
            loss, aux = diffusion.bd3lm_loss(
                model, inputs["input_ids"], inputs["labels"], mask_id=self.mask_id,
                block_size=self.block_size, generator=gen, norm=self.loss_norm,
            )
        else:
            loss, aux = diffusion.masked_diffusion_loss(
                model, inputs["input_ids"], inputs["labels"], mask_id=self.mask_id, generator=gen,
                norm=self.loss_norm,
            )
        return (loss, aux) if return_outputs else loss


class ExpertBiasBalancer(TrainerCallback):
    """After every optimizer step, let each MoE router of the model update its expert bias from the
    load it saw (``update_expert_bias(rate)``, auxiliary-loss-free balancing)."""

    def __init__(self, rate: float):
        self.rate = rate

    def on_step_end(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if hasattr(module, "update_expert_bias"):
                module.update_expert_bias(self.rate)
