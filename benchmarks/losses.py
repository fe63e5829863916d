"""Plain vs memory-lean distillation losses (issue #26 item 5): peak memory and step time at equal batch.

    .venv/bin/python benchmarks/losses.py                 # tiny and paper-shape student, CPU
    .venv/bin/python benchmarks/losses.py --sizes tiny    # seconds
    .venv/bin/python benchmarks/losses.py --device cuda   # torch.cuda.max_memory_allocated

One step = the student forward on ``[xt ; x0]``, CE + one distillation term, backward (no
optimizer step), exactly as DistillTrainer computes them with ``lean_losses`` off (plain:
``tide.diffusion.student_logits`` + ``tide.losses``) and on (``student_logits_at`` +
``tide.lean_losses``). The teacher forward is not run: its output is a random constant of the
size each path holds (plain: ``[B, L, V]`` float32 as ``teacher_token_logits`` /
``teacher_full_logits`` return; lean: the ``[N, V]`` rows at the distilled positions), the same
fixed function of the position in both paths, so the two losses must agree. Objectives:
``kl`` and ``tidal`` (Pipeline B, token level, aligned pairs = the masked positions, shared vocab
151646 at paper shape) and ``calm`` (Pipeline A, chunks of 1-3 tokens, chunk-consistent masks).

Each (size, objective, path) runs in a fresh subprocess; on CPU peak memory is the process's
``ru_maxrss`` (torch's allocator statistics are CUDA only), reported as is and less the same
process's peak after building the model and batch (``base``), i.e. what the step adds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = {
    # the tiny-world student (vocab 1100) at its distillation batch
    "tiny": {"vocab": 1100, "size": "tiny", "layers": None, "batch": 8, "length": 128},
    # Qwen3-0.6B's shapes (vocab 151936, hidden 1024, FFN 3072), 2 layers, 2 x 512 tokens
    "paper": {"vocab": 151936, "size": "paper", "layers": 2, "batch": 2, "length": 512},
}
SHARED_VOCAB = {"tiny": 1000, "paper": 151646}
MASKED = 0.15


def _setup(size: str, device: str):
    import torch

    from tide.models.student import A2DQwen3LMHeadModel, student_config

    spec = SIZES[size]
    torch.manual_seed(0)
    extra = {"num_hidden_layers": spec["layers"]} if spec["layers"] else {}
    config = student_config(spec["vocab"], 0, 1, size=spec["size"], a2d=True,
                            max_position_embeddings=2048, **extra)
    config.right_shift_logits = True
    model = A2DQwen3LMHeadModel(config).to(device).train()
    b, length = spec["batch"], spec["length"]
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randint(2, spec["vocab"] - 10, (b, length), generator=gen)
    labels = x0.clone()
    labels[:, : length // 8] = -100  # a prompt
    maskable = labels != -100
    chunk_id = torch.cumsum(torch.randint(0, 3, (b, length), generator=gen) == 0, 1)
    n_chunks = int(chunk_id.max()) + 1
    a_s = chunk_id[:, :, None] == torch.arange(n_chunks)[None, None]  # [B, L, C]
    masked0 = (torch.rand(b, length, generator=gen) < MASKED) & maskable
    has_masked = (masked0[:, :, None] & a_s).any(1)
    has_prompt = (~maskable[:, :, None] & a_s).any(1)
    chunk_masked = (has_masked[:, None, :] & a_s).any(-1) & maskable
    t = torch.full((b,), MASKED) + 0.01 * torch.rand(b, generator=gen)
    data = {"x0": x0, "maskable": maskable, "a_s": a_s, "t": t, "token_masked": masked0,
            "chunk_masked": chunk_masked, "active": has_masked & ~has_prompt}
    return model, {k: v.to(device) for k, v in data.items()}


def _teacher(flat_pos, vocab: int):
    """Teacher logits ``[R, V]`` float32 at flat positions ``b * L + i`` (a fixed function of the
    position, so both paths see the same teacher)."""
    import torch

    j = torch.arange(vocab, device=flat_pos.device, dtype=torch.float32)
    return 4 * torch.sin(0.37 * j[None] + 1.3 * flat_pos.float()[:, None])


def _step(model, d, objective: str, lean: bool, size: str):
    import torch

    from tide import diffusion, lean_losses, losses
    from tide.distill.trainer import student_logits_at

    x0, t, maskable = d["x0"], d["t"], d["maskable"]
    chunk = objective == "calm"
    masked = d["chunk_masked"] if chunk else d["token_masked"]
    xt = diffusion.noise(x0, masked, 5)
    v = SHARED_VOCAB[size]
    if not lean:
        logits = diffusion.student_logits(model, xt, x0, 32)
        ce = losses.bd3lm_ce(logits, x0, masked, maskable, t)
        b, length, vocab = logits.shape
        teacher = _teacher(torch.arange(b * length, device=x0.device), vocab).view(logits.shape)
        if chunk:
            student = losses.chunk_logprob(losses.token_logprob(logits, x0), d["a_s"])
            teacher_chunk = losses.chunk_logprob(losses.token_logprob(teacher, x0), d["a_s"])
            kd = losses.calm(student, teacher_chunk, d["active"], 5.0, reverse=True)
        else:
            zs, zt = logits[masked][:, :v], teacher[masked][:, :v]
            if objective == "kl":
                kd = losses.forward_kl(zs, zt, 2.0)
            else:
                rows = masked.nonzero(as_tuple=True)[0]
                kd = losses.tidal(zs, zt, 0.5 * (1 - t[rows]), torch.ones_like(t[rows]), 2.0)
    else:
        needed = masked
        logits, row = student_logits_at(model, xt, x0, 32, needed)
        rows, cols = masked.nonzero(as_tuple=True)
        zs = logits[row[rows, cols]]
        ce = lean_losses.lean_bd3lm_ce(zs, x0[rows, cols], rows, maskable, t)
        teacher = _teacher(rows * x0.shape[1] + cols, logits.shape[-1])  # [N, V]
        if chunk:
            teacher_lp = lean_losses.rows_to_grid(
                lean_losses.constant_token_logprob(teacher, x0[rows, cols]), rows, cols,
                tuple(x0.shape))
            teacher_chunk = losses.chunk_logprob(teacher_lp, d["a_s"])
            kd = lean_losses.lean_calm(zs, x0[rows, cols], rows, cols, d["a_s"], teacher_chunk,
                                       d["active"], 5.0, True)
        elif objective == "kl":
            kd = lean_losses.lean_forward_kl(zs[:, :v], teacher[:, :v], 2.0)
        else:
            kd = lean_losses.lean_tidal(zs[:, :v], teacher[:, :v], 0.5 * (1 - t[rows]),
                                        torch.ones_like(t[rows]), 2.0)
    loss = ce + kd
    loss.backward()
    return float(loss)


def _peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def child(size: str, objective: str, path: str, device: str, steps: int) -> dict:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, data = _setup(size, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _peak_mb(device)
    out = {"size": size, "objective": objective, "path": path, "base_mb": base}
    if path == "none":
        return out
    times, loss = [], None
    for i in range(steps + 1):  # the first step warms up
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = _step(model, data, objective, path == "lean", size)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    out.update(peak_mb=_peak_mb(device), step_s=sum(times) / len(times), loss=loss)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--objectives", nargs="+", default=["kl", "tidal", "calm"],
                        choices=["kl", "tidal", "calm"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up)")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "OBJECTIVE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.device, args.steps)))
        return

    def run(size, objective, path):
        cmd = [sys.executable, __file__, "--device", args.device, "--steps", str(args.steps),
               "--child", size, objective, path]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    unit = "peak MB (max_memory_allocated)" if args.device == "cuda" else "peak RSS MB"
    print(f"device {args.device}; {unit}; step = forward + CE + KD + backward; "
          f"mean of {args.steps} timed steps")
    header = (f"{'size':6} {'obj':6} {'plain MB':>9} {'lean MB':>8} {'ratio':>6} "
              f"{'plain MB+':>9} {'lean MB+':>8} {'ratio+':>6} {'plain s':>8} {'lean s':>8} "
              f"{'ratio':>6} {'|dloss|':>8}")
    print(header)
    for size in args.sizes:
        for objective in args.objectives:
            plain, lean = run(size, objective, "plain"), run(size, objective, "lean")
            added_p = plain["peak_mb"] - plain["base_mb"]
            added_l = lean["peak_mb"] - lean["base_mb"]
            print(f"{size:6} {objective:6} {plain['peak_mb']:9.0f} {lean['peak_mb']:8.0f} "
                  f"{lean['peak_mb'] / plain['peak_mb']:6.2f} {added_p:9.0f} {added_l:8.0f} "
                  f"{added_l / max(added_p, 1e-9):6.2f} {plain['step_s']:8.3f} "
                  f"{lean['step_s']:8.3f} {lean['step_s'] / plain['step_s']:6.2f} "
                  f"{abs(plain['loss'] - lean['loss']):8.1e}", flush=True)
    print("MB+ = the peak less the process's peak after building the model and batch; "
          "|dloss| = |plain - lean| loss of the last step")


if __name__ == "__main__":
    main()
