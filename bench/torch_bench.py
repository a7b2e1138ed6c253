#!/usr/bin/env python3
"""PyTorch eager baseline for cleave's engine benchmark (bench/engine_bench.cc).

  python3 bench/torch_bench.py --model DIR --batch B --prompt-len P --decode-steps S
                               [--threads T] [--dtype float32|bfloat16] [--repeats R]

Greedy generation on the checkpoint cleave runs: prefill is one forward over B prompts
of P random tokens (logits for the last position only, as a serving engine computes
them); decode is S steps of B sequences with a preallocated KV cache. Prints one JSON
line: {"batch": B, "prefill_tok_s": ..., "decode_tok_s": ..., ...}.

The model is the readable reference of tests/reference/mixtral_ref.py with its MoE
replaced by the grouped form of Hugging Face's MixtralSparseMoeBlock (tokens gathered
per expert with index_select, results scattered back with index_add_), so the baseline
is a fair eager PyTorch, not a strawman. Before timing, its logits are checked against
the reference forward.
"""

import argparse
import json
import os
import sys
import time

try:
    import torch
except ImportError:
    # A python3 ahead on PATH (pyenv, a venv) may lack Debian's python3-torch: rerun
    # under the system interpreter, once.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("CLEAVE_REF_REEXEC"):
        os.environ["CLEAVE_REF_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import mixtral_ref  # noqa: E402


class EagerMixtral(mixtral_ref.MixtralRef):
    def moe(self, layer, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, experts = self.route(layer, x)  # [N, k] each
        k = experts.shape[1]
        flat = experts.flatten()
        # One sort groups the (token, slot) pairs by expert; each expert then runs one
        # GEMM chain over a contiguous slice of them.
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.cfg.experts).tolist()
        tokens = order // k
        slot_weights = weights.flatten()[order]
        out = torch.zeros_like(x)
        begin = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            idx = tokens[begin:begin + n]
            y = self.expert(layer, e, x.index_select(0, idx)) * slot_weights[begin:begin + n, None]
            out.index_add_(0, idx, y)
            begin += n
        return out.reshape(shape)

    def step(self, tokens, cache):
        """forward_cached, but the LM head only for each sequence's last position."""
        if cache.length + tokens.shape[1] > cache.k[0].shape[2]:
            raise mixtral_ref.ReferenceError("KV cache full")
        cos, sin, allowed = self.cached_step_inputs(*tokens.shape, cache)
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            h = self.rms_norm(x, layer["input_norm"])
            x = x + self.attention_cached(i, layer, h, cos, sin, allowed, cache)
            x = x + self.moe(layer, self.rms_norm(x, layer["post_norm"]))
        cache.length += tokens.shape[1]
        return self.rms_norm(x[:, -1], self.norm) @ self.lm_head.T  # [B, vocab]


def generate(m, prompts, steps):
    """Greedy: returns (prefill seconds, decode seconds, generated ids [B, steps + 1])."""
    B, P = prompts.shape
    cache = m.new_cache(B, P + steps)
    t0 = time.perf_counter()
    next_ids = m.step(prompts, cache).argmax(dim=-1, keepdim=True)
    t1 = time.perf_counter()
    out = [next_ids]
    for _ in range(steps):
        next_ids = m.step(next_ids, cache).argmax(dim=-1, keepdim=True)
        out.append(next_ids)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, torch.cat(out, dim=1)


def check_against_reference(m):
    """The grouped MoE on the cached path gives the reference's logits (fp32 only)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, m.cfg.vocab, (2, 6), generator=g)
    # The reference forward with the reference's own per-expert-mask MoE.
    m.moe = lambda layer, x: mixtral_ref.MixtralRef.moe(m, layer, x)
    try:
        ref = mixtral_ref.MixtralRef.forward(m, tokens)[:, -1]
    finally:
        del m.moe
    got = m.step(tokens, m.new_cache(2, 6))
    mixtral_ref.check_close("torch_bench: grouped MoE with the KV cache vs the reference", got, ref)


def main(argv):
    ap = argparse.ArgumentParser(description="PyTorch eager Mixtral baseline")
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--prompt-len", type=int, required=True)
    ap.add_argument("--decode-steps", type=int, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="default: all cores")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="compute dtype (weights are converted on load)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs; the best is reported")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if min(args.batch, args.prompt_len, args.threads, args.repeats) <= 0 or args.decode_steps < 0:
        ap.error("--batch, --prompt-len, --threads and --repeats must be positive, --decode-steps >= 0")

    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        m = EagerMixtral(args.model, dtype=getattr(torch, args.dtype))
        if args.dtype == "float32":
            check_against_reference(m)
        g = torch.Generator().manual_seed(args.seed)
        # Ids 0..2 are the special ids of cleave's checkpoints; prompts avoid them.
        low = 3 if m.cfg.vocab > 3 else 0
        prompts = torch.randint(low, m.cfg.vocab, (args.batch, args.prompt_len), generator=g)
        # Warm-up at full size: allocator, thread pool and kernel choices settle.
        generate(m, prompts, min(args.decode_steps, 4))
        best_prefill, best_decode = float("inf"), float("inf")
        for _ in range(args.repeats):
            prefill_s, decode_s, _ = generate(m, prompts, args.decode_steps)
            best_prefill = min(best_prefill, prefill_s)
            best_decode = min(best_decode, decode_s)
    result = {
        "batch": args.batch,
        "prefill_tok_s": args.batch * args.prompt_len / best_prefill,
        "decode_tok_s": args.batch * args.decode_steps / best_decode if args.decode_steps else 0.0,
        "prompt_len": args.prompt_len,
        "decode_steps": args.decode_steps,
        "threads": args.threads,
        "dtype": args.dtype,
        "prefill_s": best_prefill,
        "decode_s": best_decode,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except mixtral_ref.ReferenceError as e:
        print(f"torch_bench.py: error: {e}", file=sys.stderr)
        sys.exit(1)
