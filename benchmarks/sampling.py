"""Speed of the BD3LM samplers: reference vs cached vs threshold, on the same model and prompts.

    .venv/bin/python benchmarks/sampling.py                 # CPU here, CUDA (bf16) where present
    .venv/bin/python benchmarks/sampling.py --paper-layers 28 --paper-tokens 256   # full shape

Models: the tiny student (results/students/bd3lm if present, else a fresh tiny one) and the real
student's shape (Qwen3-0.6B: hidden 1024, 16/8 heads of 128, FFN 3072, vocab 151936) with random
weights and ``--paper-layers`` layers (28 = the real depth; fewer on CPU, and fewer tokens, which
the output states). Prompts: held-out questions of results/world (chat template) for the trained tiny
student, else random ids of mixed lengths (fixed seed); no EOS stop, so every run generates the
full length. Per (model, batch): seconds, generated tokens/s, speed-up over the
reference and the fraction of tokens equal to the reference's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tide.models.student import A2DQwen3LMHeadModel, student_config
from tide.sampling import generate

METHODS = ("reference", "cached", "threshold")


def tiny_student(device: torch.device, dtype: torch.dtype):
    """(model, mask_id, pad_id, source, tokenizer or None): the trained tiny student, else a
    random tiny one."""
    path = ROOT / "results" / "students" / "bd3lm"
    if (path / "model.safetensors").is_file():
        from tide.models.loading import load_model
        from tide.tokenization import load_tokenizer

        model = load_model(path, kind="a2d-qwen3")
        tok = load_tokenizer(path)
        return (model.to(device, dtype).eval(), tok.mask_token_id, tok.pad_token_id,
                "results/students/bd3lm", tok)
    torch.manual_seed(0)
    config = student_config(1024, 997, 999, size="tiny", a2d=True)
    model = A2DQwen3LMHeadModel(config).to(device, dtype).eval()
    return model, 1023, 997, "random tiny", None


def world_prompts(tok, batch: int, pad_id: int, offset: int) -> torch.Tensor | None:
    """LongTensor[batch, P]: chat-formatted held-out questions of results/world (gsm8k, bbh,
    math, mbpp in turn), left-padded; None without the world."""
    import json

    tasks = ROOT / "results" / "world" / "tasks"
    if tok is None or not tasks.is_dir():
        return None
    rows = []
    for family in ("gsm8k", "bbh", "math", "mbpp"):
        lines = (tasks / f"{family}.jsonl").read_text().splitlines()
        rows += [json.loads(line)["prompt"] for line in lines[offset : offset + batch]]
    rows = rows[offset % 4 :: 4][:batch] if batch > 1 else rows[:1]
    chats = [tok.apply_chat_template([{"role": "user", "content": r}], tokenize=False,
                                     add_generation_prompt=True) for r in rows]
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in chats]
    width = max(map(len, ids))
    return torch.tensor([[pad_id] * (width - len(i)) + i for i in ids])


def paper_student(layers: int, device: torch.device, dtype: torch.dtype):
    """(model, mask_id, pad_id, source): Qwen3-0.6B's shape, random weights, ``layers`` layers."""
    torch.manual_seed(0)
    config = student_config(151936, 151643, 151645, size="paper", a2d=True,
                            num_hidden_layers=layers, max_position_embeddings=4096)
    model = A2DQwen3LMHeadModel(config).to(device, dtype).eval()
    return model, 151669, 151643, f"Qwen3-0.6B shape, {layers} layers, random weights"


def prompt_batch(batch: int, vocab_hi: int, pad_id: int, seed: int) -> torch.Tensor:
    """LongTensor[batch, P]: random prompts of 20-120 tokens, left-padded with pad_id."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, 121, (batch,), generator=generator).tolist()
    rows = [torch.randint(3, vocab_hi, (n,), generator=generator).tolist() for n in lengths]
    width = max(lengths)
    return torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])


def timed(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    """(seconds, result) of fn(), synchronising CUDA around it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def bench(model, mask_id, pad_id, prompts, *, tokens, block_size, threshold, device):
    """{method: (seconds, tokens LongTensor[N, tokens])} for one batch of prompts."""
    kw = {"gen_length": tokens, "steps": tokens, "block_size": block_size, "mask_id": mask_id,
          "eos_id": None, "pad_id": pad_id}
    prompts = prompts.to(device)
    results = {}
    for method in METHODS:
        extra = {"threshold": threshold} if method == "threshold" else {}
        generate(model, prompts, method=method, **(kw | {"gen_length": block_size,
                                                         "steps": block_size}), **extra)  # warm-up
        results[method] = timed(lambda m=method, e=extra: generate(model, prompts, method=m,
                                                                    **kw, **e), device)
    return results


def report(title: str, batch: int, tokens: int, results: dict) -> None:
    """One table: method, seconds, new tokens/s, speed-up vs reference, agreement."""
    ref_time, ref_out = results["reference"]
    print(f"\n{title} | batch {batch} | {tokens} new tokens per prompt")
    print(f"{'method':<10} {'seconds':>9} {'tok/s':>9} {'speed-up':>9} {'agree':>8}")
    for method, (seconds, out) in results.items():
        agree = (out == ref_out).float().mean().item()
        rate = batch * tokens / seconds
        print(f"{method:<10} {seconds:>9.2f} {rate:>9.1f} {ref_time / seconds:>8.2f}x "
              f"{agree:>7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="new tokens (tiny student)")
    parser.add_argument("--batch", type=int, default=16, help="the batched run's batch size")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--paper-layers", type=int, default=None,
                        help="layers of the real-shape model (default: 28 on CUDA, 2 on CPU)")
    parser.add_argument("--paper-tokens", type=int, default=None,
                        help="new tokens at the real shape (default: 256 on CUDA, 64 on CPU)")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    print(f"device {device} ({torch.cuda.get_device_name() if cuda else 'CPU'}), dtype {dtype}, "
          f"torch threads {torch.get_num_threads()}, block {args.block_size}, "
          f"steps = tokens (one per step), threshold {args.threshold}, no EOS stop")

    model, mask_id, pad_id, source, tok = tiny_student(device, dtype)
    for batch, seed in ((1, 0), (args.batch, 1)):
        prompts = world_prompts(tok, batch, pad_id, seed)
        kind = "results/world prompts" if prompts is not None else "random prompts"
        if prompts is None:
            prompts = prompt_batch(batch, min(990, mask_id), pad_id, seed)
        results = bench(model, mask_id, pad_id, prompts, tokens=args.tokens,
                        block_size=args.block_size, threshold=args.threshold, device=device)
        report(f"tiny student ({source}, {kind})", batch, args.tokens, results)

    if args.skip_paper:
        return
    layers = args.paper_layers or (28 if cuda else 2)
    tokens = args.paper_tokens or (256 if cuda else 64)
    if not cuda and (layers < 28 or tokens < 256):
        print(f"\n[CPU: the real shape runs with {layers} of 28 layers and {tokens} of 256 tokens "
              "to fit minutes; pass --paper-layers 28 --paper-tokens 256 for the full size]")
    model, mask_id, pad_id, source = paper_student(layers, device, dtype)
    source += ", random prompts"
    for batch, seed in ((1, 0), (min(args.batch, 4) if not cuda else args.batch, 1)):
        prompts = prompt_batch(batch, 150000, pad_id, seed)
        results = bench(model, mask_id, pad_id, prompts, tokens=tokens,
                        block_size=args.block_size, threshold=args.threshold, device=device)
        report(source, batch, tokens, results)


if __name__ == "__main__":
    main()
