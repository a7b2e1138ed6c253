#!/usr/bin/env python3
"""An independent PyTorch implementation of the Hugging Face Mixtral forward pass.

cleave's C++ forward is checked against this file (tests/integration/reference_test.cc),
so it is written to be read, not to be fast: fp32 throughout (weights upcast from
F32/F16/BF16), the same formulas as transformers' modeling_mixtral.py, and nothing shared
with the C++ code but the checkpoint on disk.

  python3 tests/reference/mixtral_ref.py --model DIR --prompts PROMPTS.json --out LOGITS.bin
  python3 tests/reference/mixtral_ref.py --model DIR --self-test

PROMPTS.json is {"prompts": [[token ids], ...]}. LOGITS.bin holds, little-endian: int32
N, then per prompt int32 L, int32 V and L*V float32 logits (row-major, one row per
position). Each prompt is run alone and again inside one right-padded batch; the script
refuses to write unless the two agree.
"""

import argparse
import json
import math
import os
import struct
import sys

try:
    import torch
except ImportError:
    # A python3 ahead on PATH (pyenv, a venv) may lack Debian's python3-torch: rerun
    # under the system interpreter, once.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("CLEAVE_REF_REEXEC"):
        os.environ["CLEAVE_REF_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# Largest |a - b| allowed between two computations of the same logits, relative to the
# largest |logit| of the row (at least 1): fp32 results differ only by summation order.
TOLERANCE = 1e-5


class ReferenceError(Exception):
    pass


class Config:
    """The fields of a MixtralForCausalLM config.json the forward pass reads."""

    def __init__(self, d):
        def need(key, kind=int):
            if key not in d or d[key] is None:
                raise ReferenceError(f"config.json: key '{key}' missing")
            v = d[key]
            if kind is int and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ReferenceError(f"config.json: key '{key}' must be a positive integer, got {v!r}")
            if kind is float and (not isinstance(v, (int, float)) or v <= 0):
                raise ReferenceError(f"config.json: key '{key}' must be a positive number, got {v!r}")
            return v

        def opt(key, default, kind):
            return need(key, kind) if d.get(key) is not None else default

        self.hidden = need("hidden_size")
        self.ffn = need("intermediate_size")
        self.layers = need("num_hidden_layers")
        self.heads = need("num_attention_heads")
        self.kv_heads = opt("num_key_value_heads", self.heads, int)
        self.head_dim = opt("head_dim", self.hidden // self.heads, int)
        self.experts = need("num_local_experts")
        self.top_k = need("num_experts_per_tok")
        self.eps = float(opt("rms_norm_eps", 1e-5, float))
        self.theta = float(opt("rope_theta", 1e6, float))
        self.vocab = need("vocab_size")
        self.tie = bool(d.get("tie_word_embeddings", False))
        self.sliding_window = d.get("sliding_window")
        if self.heads % self.kv_heads:
            raise ReferenceError("config.json: num_attention_heads is not a multiple of num_key_value_heads")
        if self.top_k > self.experts:
            raise ReferenceError("config.json: num_experts_per_tok > num_local_experts")
        if self.head_dim % 2:
            raise ReferenceError("config.json: head_dim must be even for rotary embeddings")

    @staticmethod
    def load(model_dir):
        path = os.path.join(model_dir, "config.json")
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ReferenceError(f"{path}: {e}") from None
        if not isinstance(d, dict):
            raise ReferenceError(f"{path}: not a JSON object")
        return Config(d)


class KVCache:
    """Per layer, keys and values [batch, kv_heads, max_len, head_dim]; `length` filled."""

    def __init__(self, cfg, batch, max_len, dtype):
        shape = (batch, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.layers)]
        self.length = 0


class MixtralRef:
    def __init__(self, model_dir, dtype=torch.float32):
        self.cfg = cfg = Config.load(model_dir)
        self.dtype = dtype
        try:
            w = safetensors_io.load_checkpoint(model_dir)
        except (OSError, safetensors_io.SafetensorsError) as e:
            raise ReferenceError(str(e)) from None

        def get(name, shape):
            if name not in w:
                raise ReferenceError(f"{model_dir}: tensor {name} missing")
            t = w[name]
            if list(t.shape) != list(shape):
                raise ReferenceError(f"{model_dir}: tensor {name} has shape {list(t.shape)}, want {list(shape)}")
            return t.to(dtype)

        h, hd = cfg.hidden, cfg.head_dim
        self.embed = get("model.embed_tokens.weight", [cfg.vocab, h])
        self.layers = []
        for i in range(cfg.layers):
            p = f"model.layers.{i}."
            moe = p + "block_sparse_moe."
            self.layers.append({
                "input_norm": get(p + "input_layernorm.weight", [h]),
                "post_norm": get(p + "post_attention_layernorm.weight", [h]),
                "q": get(p + "self_attn.q_proj.weight", [cfg.heads * hd, h]),
                "k": get(p + "self_attn.k_proj.weight", [cfg.kv_heads * hd, h]),
                "v": get(p + "self_attn.v_proj.weight", [cfg.kv_heads * hd, h]),
                "o": get(p + "self_attn.o_proj.weight", [h, cfg.heads * hd]),
                "gate": get(moe + "gate.weight", [cfg.experts, h]),
                "w1": [get(f"{moe}experts.{e}.w1.weight", [cfg.ffn, h]) for e in range(cfg.experts)],
                "w2": [get(f"{moe}experts.{e}.w2.weight", [h, cfg.ffn]) for e in range(cfg.experts)],
                "w3": [get(f"{moe}experts.{e}.w3.weight", [cfg.ffn, h]) for e in range(cfg.experts)],
            })
        self.norm = get("model.norm.weight", [h])
        self.lm_head = self.embed if cfg.tie else get("lm_head.weight", [cfg.vocab, h])
        # HF: inv_freq = 1 / theta^(arange(0, d, 2) / d); angles taken in float64 here.
        self.inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    # ---- building blocks -------------------------------------------------------------

    def rms_norm(self, x, weight):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.cfg.eps)
        return (y * weight.float()).to(self.dtype)

    def rope_cos_sin(self, positions):
        """cos, sin [..., head_dim] for integer positions [...] (HF: cat(freqs, freqs))."""
        freqs = positions.to(torch.float64)[..., None] * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    @staticmethod
    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], dim=-1)

    def apply_rope(self, x, cos, sin):
        """x [B, heads, T, hd]; cos/sin [B, T, hd]."""
        cos, sin = cos[:, None], sin[:, None]
        return x * cos + self.rotate_half(x) * sin

    def route(self, layer, x):
        """x [N, hidden] -> (weights [N, k] summing to 1, expert ids [N, k])."""
        logits = x @ layer["gate"].T
        probs = F.softmax(logits.float(), dim=-1)
        weights, experts = torch.topk(probs, self.cfg.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights.to(self.dtype), experts

    @staticmethod
    def expert(layer, e, x):
        return (F.silu(x @ layer["w1"][e].T) * (x @ layer["w3"][e].T)) @ layer["w2"][e].T

    def moe(self, layer, x):
        """Sparse MoE: each token's output is the routed weighted sum of its top-k experts."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, experts = self.route(layer, x)
        out = torch.zeros_like(x)
        for e in range(self.cfg.experts):
            chosen = experts == e  # [N, k]
            rows = chosen.any(dim=-1).nonzero().flatten()
            if rows.numel() == 0:
                continue
            w = (weights * chosen).sum(dim=-1)[rows]
            out[rows] += w[:, None] * self.expert(layer, e, x[rows])
        return out.reshape(shape)

    def qkv(self, layer, x, cos, sin):
        """x [B, T, hidden] -> q [B, heads, T, hd], k and v [B, kv_heads, T, hd], rotated."""
        cfg = self.cfg
        B, T, _ = x.shape
        q = (x @ layer["q"].T).view(B, T, cfg.heads, cfg.head_dim).transpose(1, 2)
        k = (x @ layer["k"].T).view(B, T, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        v = (x @ layer["v"].T).view(B, T, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        return self.apply_rope(q, cos, sin), self.apply_rope(k, cos, sin), v

    # ---- cache-free forward (the reference) --------------------------------------------

    def attention(self, layer, x, cos, sin, valid):
        """Causal GQA over the whole sequence. x [B, T, hidden]; valid [B, T] marks real tokens."""
        cfg = self.cfg
        B, T, _ = x.shape
        q, k, v = self.qkv(layer, x, cos, sin)
        rep = cfg.heads // cfg.kv_heads  # HF repeat_kv: query head h reads kv head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
        allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & valid[:, None, None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = F.softmax(scores.float(), dim=-1).to(self.dtype)
        out = (probs @ v).transpose(1, 2).reshape(B, T, cfg.heads * cfg.head_dim)
        return out @ layer["o"].T

    def forward(self, tokens, valid=None):
        """tokens [B, T] (right-padded where `valid` is False) -> logits [B, T, vocab]."""
        if valid is None:
            valid = torch.ones_like(tokens, dtype=torch.bool)
        B, T = tokens.shape
        cos, sin = self.rope_cos_sin(torch.arange(T).expand(B, T))
        x = self.embed[tokens]
        for layer in self.layers:
            x = x + self.attention(layer, self.rms_norm(x, layer["input_norm"]), cos, sin, valid)
            x = x + self.moe(layer, self.rms_norm(x, layer["post_norm"]))
        return self.rms_norm(x, self.norm) @ self.lm_head.T

    # ---- forward with a KV cache (decode, and the self-test's second path) -------------

    def new_cache(self, batch, max_len):
        return KVCache(self.cfg, batch, max_len, self.dtype)

    def cached_step_inputs(self, B, T, cache):
        """Rotary cos/sin and the causal mask (None when nothing is masked) for T new tokens."""
        start, end = cache.length, cache.length + T
        cos, sin = self.rope_cos_sin(torch.arange(start, end).expand(B, T))
        if T == 1:
            return cos, sin, None
        rep = self.cfg.heads // self.cfg.kv_heads
        query_pos = torch.arange(start, end).repeat(rep)  # rows of the grouped queries below
        return cos, sin, torch.arange(end)[None, :] <= query_pos[:, None]

    def attention_cached(self, i, layer, x, cos, sin, allowed, cache):
        cfg = self.cfg
        B, T, _ = x.shape
        start = cache.length
        end = start + T
        q, k, v = self.qkv(layer, x, cos, sin)
        cache.k[i][:, :, start:end] = k
        cache.v[i][:, :, start:end] = v
        keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]
        # Query heads grouped under their kv head: [B, kv_heads, rep * T, hd], no copy of K/V.
        rep = cfg.heads // cfg.kv_heads
        qg = q.reshape(B, cfg.kv_heads, rep * T, cfg.head_dim)
        scores = (qg @ keys.transpose(-1, -2)) / math.sqrt(cfg.head_dim)  # [B, kv, rep*T, end]
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        probs = F.softmax(scores.float(), dim=-1).to(self.dtype)
        out = (probs @ values).view(B, cfg.heads, T, cfg.head_dim)
        return out.transpose(1, 2).reshape(B, T, cfg.heads * cfg.head_dim) @ layer["o"].T

    def forward_cached(self, tokens, cache):
        """Appends tokens [B, T] (all sequences at the same length) -> logits [B, T, vocab]."""
        if cache.length + tokens.shape[1] > cache.k[0].shape[2]:
            raise ReferenceError("KV cache full")
        cos, sin, allowed = self.cached_step_inputs(*tokens.shape, cache)
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            h = self.rms_norm(x, layer["input_norm"])
            x = x + self.attention_cached(i, layer, h, cos, sin, allowed, cache)
            x = x + self.moe(layer, self.rms_norm(x, layer["post_norm"]))
        cache.length += tokens.shape[1]
        return self.rms_norm(x, self.norm) @ self.lm_head.T


# ---- a third, naive implementation for --self-test: one token and one head at a time ----

def naive_logits(m, prompt):
    cfg = m.cfg
    rep = cfg.heads // cfg.kv_heads
    half = cfg.head_dim // 2

    def norm(x, w):
        return x / torch.sqrt((x * x).mean() + cfg.eps) * w

    def rope(x, pos):
        i = torch.arange(half, dtype=torch.float64)
        angle = pos * cfg.theta ** (-2.0 * i / cfg.head_dim)
        c, s = angle.cos().float(), angle.sin().float()
        a, b = x[:half], x[half:]
        return torch.cat([a * c - b * s, b * c + a * s])

    keys = [[[] for _ in range(cfg.kv_heads)] for _ in range(cfg.layers)]
    values = [[[] for _ in range(cfg.kv_heads)] for _ in range(cfg.layers)]
    rows = []
    for pos, tok in enumerate(prompt):
        x = m.embed[tok].clone()
        for li, L in enumerate(m.layers):
            h = norm(x, L["input_norm"])
            q, k, v = L["q"] @ h, L["k"] @ h, L["v"] @ h
            for g in range(cfg.kv_heads):
                sl = slice(g * cfg.head_dim, (g + 1) * cfg.head_dim)
                keys[li][g].append(rope(k[sl], pos))
                values[li][g].append(v[sl])
            heads = []
            for hq in range(cfg.heads):
                qh = rope(q[hq * cfg.head_dim:(hq + 1) * cfg.head_dim], pos)
                g = hq // rep
                scores = torch.stack([qh.dot(kj) for kj in keys[li][g]]) / math.sqrt(cfg.head_dim)
                p = torch.softmax(scores, dim=0)
                heads.append(sum(pj * vj for pj, vj in zip(p, values[li][g])))
            x = x + L["o"] @ torch.cat(heads)
            h = norm(x, L["post_norm"])
            probs = torch.softmax(L["gate"] @ h, dim=0).tolist()
            top = sorted(range(cfg.experts), key=lambda e: -probs[e])[:cfg.top_k]
            total = sum(probs[e] for e in top)
            for e in top:
                y = L["w2"][e] @ (F.silu(L["w1"][e] @ h) * (L["w3"][e] @ h))
                x = x + (probs[e] / total) * y
        rows.append(m.lm_head @ norm(x, m.norm))
    return torch.stack(rows)


def worst_relative(a, b):
    """max over rows of max|a - b| / max(1, max|b|)."""
    diff = (a - b).abs().amax(dim=-1)
    scale = b.abs().amax(dim=-1).clamp(min=1.0)
    return float((diff / scale).max()) if diff.numel() else 0.0


def check_close(what, a, b):
    err = worst_relative(a, b)
    if not err <= TOLERANCE:
        raise ReferenceError(f"{what}: logits differ by {err:.3g} (relative), tolerance {TOLERANCE}")
    return err


def logits_alone_and_batched(m, prompts):
    """Each prompt's logits [L, V] run alone; checked against one right-padded batch."""
    alone = [m.forward(torch.tensor([p]))[0] for p in prompts]
    T = max(len(p) for p in prompts)
    tokens = torch.zeros(len(prompts), T, dtype=torch.long)
    valid = torch.zeros(len(prompts), T, dtype=torch.bool)
    for i, p in enumerate(prompts):
        tokens[i, :len(p)] = torch.tensor(p)
        valid[i, :len(p)] = True
    batched = m.forward(tokens, valid)
    for i, p in enumerate(prompts):
        check_close(f"prompt {i} alone vs in a padded batch", batched[i, :len(p)], alone[i])
    return alone


def read_prompts(path, cfg):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ReferenceError(f"{path}: {e}") from None
    prompts = d.get("prompts") if isinstance(d, dict) else None
    if not isinstance(prompts, list) or not prompts:
        raise ReferenceError(f'{path}: want {{"prompts": [[token ids], ...]}} with at least one prompt')
    for i, p in enumerate(prompts):
        if not isinstance(p, list) or not p:
            raise ReferenceError(f"{path}: prompt {i} is not a non-empty list of ids")
        for t in p:
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < cfg.vocab:
                raise ReferenceError(f"{path}: prompt {i}: token {t!r} outside [0, {cfg.vocab})")
        if isinstance(cfg.sliding_window, int) and len(p) > cfg.sliding_window:
            raise ReferenceError(f"{path}: prompt {i} is longer than sliding_window "
                                 f"({cfg.sliding_window}), which this reference does not implement")
    return prompts


def write_logits(path, rows):
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(rows)))
        for r in rows:
            L, V = r.shape
            f.write(struct.pack("<ii", L, V))
            f.write(r.contiguous().to(torch.float32).numpy().astype("<f4").tobytes())


def self_test(m, prompts):
    """Full forward == naive per-token loop == KV-cache decode == padded batch."""
    logits = logits_alone_and_batched(m, prompts)
    report = []
    for i, (p, full) in enumerate(zip(prompts, logits)):
        errs = [check_close(f"prompt {i}: full forward vs naive per-token loop",
                            full, naive_logits(m, p))]
        cache = m.new_cache(1, len(p))
        steps = torch.cat([m.forward_cached(torch.tensor([[t]]), cache)[0] for t in p])
        errs.append(check_close(f"prompt {i}: full forward vs one token at a time with the KV cache",
                                full, steps))
        cut = len(p) // 2
        cache = m.new_cache(1, len(p))
        parts = [m.forward_cached(torch.tensor([p[:cut]]), cache)[0]] if cut else []
        parts += [m.forward_cached(torch.tensor([p[cut:]]), cache)[0]]
        errs.append(check_close(f"prompt {i}: full forward vs two chunks with the KV cache",
                                full, torch.cat(parts)))
        report.append(f"len {len(p)}: " + ", ".join(f"{e:.2g}" for e in errs))
    return report


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors)")
    ap.add_argument("--prompts", help='JSON file {"prompts": [[token ids], ...]}')
    ap.add_argument("--out", help="binary logits file to write")
    ap.add_argument("--self-test", action="store_true",
                    help="check the forward pass against a naive loop and the KV-cache path")
    args = ap.parse_args(argv)
    if not args.self_test and not (args.prompts and args.out):
        ap.error("--prompts and --out are required (or use --self-test)")
    torch.manual_seed(0)
    with torch.inference_mode():
        m = MixtralRef(args.model)
        if args.self_test:
            if args.prompts:
                prompts = read_prompts(args.prompts, m.cfg)
            else:
                g = torch.Generator().manual_seed(1)
                prompts = [torch.randint(0, m.cfg.vocab, (n,), generator=g).tolist() for n in (1, 7, 19)]
            for line in self_test(m, prompts):
                print(f"self-test ok ({line})")
            return 0
        prompts = read_prompts(args.prompts, m.cfg)
        rows = logits_alone_and_batched(m, prompts)
        write_logits(args.out, rows)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ReferenceError as e:
        print(f"mixtral_ref.py: error: {e}", file=sys.stderr)
        sys.exit(1)
