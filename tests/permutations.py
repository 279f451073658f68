"""Small models with numpy forward passes, and the function-preserving rewrites of issue #22.

Three families, each with the real key names of its kind so that assay names them as
it names the real thing:

* a BERT encoder (``bert.embeddings...``, post-LayerNorm, GELU FFN, multi-head attention,
  pooler and classifier): FFN neurons, attention heads (Q/K/V rows and the output
  projection's columns together) and the hidden dimension everywhere (embeddings,
  every linear layer, every LayerNorm);
* a ReLU MLP (``mlp.N.weight``): hidden neurons permuted and rescaled by positive
  factors (ReLU(c x) = c ReLU(x) for c > 0; GELU and SiLU have no such identity);
* a UNet-like conv stack with Stable Diffusion LDM names (conv_in, a down res block with
  GroupNorm + SiLU and a residual connection, an up res block reading the concatenation
  of its input and the skip from conv_in, with a 1x1 skip convolution, conv_out):
  channels permuted so that GroupNorm groups map onto groups (whole groups reordered,
  channels reordered within).

Every rewrite is checked by running the model: ``forward`` of the rewritten weights
equals ``forward`` of the original. ``train_mlp`` trains the MLP with plain numpy SGD
(a real training loop on fixed synthetic data) for the independent-models test.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Arrays = dict[str, np.ndarray]


def _f32(a: Mapping[str, np.ndarray]) -> Arrays:
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in a.items()}


def fine_tune(a: Mapping[str, np.ndarray], rel: float, seed: int) -> Arrays:
    """Every tensor moved by ``rel`` of its RMS, independently per element."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in a.items():
        rms = float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))
        out[k] = v + np.float32(rel * rms) * rng.standard_normal(v.shape).astype(np.float32)
    return _f32(out)


# ------------------------------------------------------------------ BERT


BERT = {"hidden": 64, "layers": 2, "ff": 256, "heads": 4, "vocab": 200, "positions": 32}


def bert(seed: int, *, hidden: int = 64, layers: int = 2, ff: int = 256, vocab: int = 200,
         positions: int = 32) -> Arrays:
    rng = np.random.default_rng(seed)
    a: Arrays = {}

    def lin(name: str, o: int, i: int) -> None:
        a[name + ".weight"] = rng.standard_normal((o, i)) / np.sqrt(i)
        a[name + ".bias"] = 0.02 * rng.standard_normal(o)

    def ln(name: str, c: int) -> None:
        a[name + ".weight"] = 1.0 + 0.1 * rng.standard_normal(c)
        a[name + ".bias"] = 0.05 * rng.standard_normal(c)

    e = "bert.embeddings."
    a[e + "word_embeddings.weight"] = rng.standard_normal((vocab, hidden))
    a[e + "position_embeddings.weight"] = 0.5 * rng.standard_normal((positions, hidden))
    a[e + "token_type_embeddings.weight"] = 0.5 * rng.standard_normal((2, hidden))
    ln(e + "LayerNorm", hidden)
    for n in range(layers):
        p = f"bert.encoder.layer.{n}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            lin(p + m, hidden, hidden)
        ln(p + "attention.output.LayerNorm", hidden)
        lin(p + "intermediate.dense", ff, hidden)
        lin(p + "output.dense", hidden, ff)
        ln(p + "output.LayerNorm", hidden)
    lin("bert.pooler.dense", hidden, hidden)
    lin("classifier", 3, hidden)
    return _f32(a)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def bert_forward(a: Mapping[str, np.ndarray], tokens: np.ndarray, heads: int = BERT["heads"]) -> np.ndarray:
    """Classifier logits for each sequence of ``tokens`` (batch, length), in float64."""
    w = {k: v.astype(np.float64) for k, v in a.items()}
    e = "bert.embeddings."
    x = (w[e + "word_embeddings.weight"][tokens] + w[e + "position_embeddings.weight"][: tokens.shape[1]]
         + w[e + "token_type_embeddings.weight"][0])
    x = _layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"])
    n = 0
    while f"bert.encoder.layer.{n}.attention.self.query.weight" in w:
        p = f"bert.encoder.layer.{n}."

        def lin(name: str, v: np.ndarray, p: str = p) -> np.ndarray:
            return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (lin(f"attention.self.{m}", x) for m in ("query", "key", "value"))
        b, t, h = q.shape
        d = h // heads
        q, k, v = (z.reshape(b, t, heads, d).transpose(0, 2, 1, 3) for z in (q, k, v))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
        x = _layer_norm(x + lin("attention.output.dense", ctx),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        hdn = _gelu(lin("intermediate.dense", x))
        x = _layer_norm(x + lin("output.dense", hdn), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        n += 1
    pooled = np.tanh(x[:, 0] @ w["bert.pooler.dense.weight"].T + w["bert.pooler.dense.bias"])
    return pooled @ w["classifier.weight"].T + w["classifier.bias"]


def bert_permute_ffn(a: Mapping[str, np.ndarray], layer: int, perm: np.ndarray) -> Arrays:
    """FFN neurons of one layer: rows of the first matrix and its bias, columns of the second."""
    out = dict(a)
    p = f"bert.encoder.layer.{layer}."
    out[p + "intermediate.dense.weight"] = a[p + "intermediate.dense.weight"][perm]
    out[p + "intermediate.dense.bias"] = a[p + "intermediate.dense.bias"][perm]
    out[p + "output.dense.weight"] = a[p + "output.dense.weight"][:, perm]
    return _f32(out)


def bert_permute_heads(a: Mapping[str, np.ndarray], layer: int, head_perm: np.ndarray,
                       heads: int = BERT["heads"]) -> Arrays:
    """Attention heads of one layer: Q/K/V rows (and biases) by whole heads, the output
    projection's columns with them."""
    out = dict(a)
    p = f"bert.encoder.layer.{layer}."
    h = a[p + "attention.self.query.weight"].shape[0]
    d = h // heads
    rows = (head_perm[:, None] * d + np.arange(d)[None, :]).reshape(-1)
    for m in ("query", "key", "value"):
        out[p + f"attention.self.{m}.weight"] = a[p + f"attention.self.{m}.weight"][rows]
        out[p + f"attention.self.{m}.bias"] = a[p + f"attention.self.{m}.bias"][rows]
    out[p + "attention.output.dense.weight"] = a[p + "attention.output.dense.weight"][:, rows]
    return _f32(out)


def bert_permute_hidden(a: Mapping[str, np.ndarray], perm: np.ndarray) -> Arrays:
    """One permutation of the residual dimension everywhere: embedding columns, every
    LayerNorm, the input columns of every matrix reading the residual stream and the
    rows (and biases) of every matrix writing it."""
    out = dict(a)
    for k, v in a.items():
        if k.startswith("bert.embeddings.") and k.endswith("embeddings.weight"):
            out[k] = v[:, perm]
        elif "LayerNorm" in k:
            out[k] = v[perm]
        elif k.startswith("bert.encoder."):
            if any(m in k for m in ("attention.self.", "intermediate.dense")) and k.endswith(".weight"):
                out[k] = v[:, perm]
            elif "output.dense" in k:  # rows (and bias) write the residual stream
                out[k] = v[perm]
        elif k == "bert.pooler.dense.weight":
            out[k] = v[:, perm]
    return _f32(out)


# ------------------------------------------------------------------ ReLU MLP


def mlp(seed: int, sizes: tuple[int, ...] = (32, 256, 256, 10)) -> Arrays:
    rng = np.random.default_rng(seed)
    a: Arrays = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        a[f"mlp.{2 * i}.weight"] = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        a[f"mlp.{2 * i}.bias"] = 0.05 * rng.standard_normal(n_out)
    return _f32(a)


def mlp_forward(a: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    n = 0
    h = x.astype(np.float64)
    while f"mlp.{2 * n}.weight" in a:
        h = h @ a[f"mlp.{2 * n}.weight"].T.astype(np.float64) + a[f"mlp.{2 * n}.bias"]
        if f"mlp.{2 * n + 2}.weight" in a:
            h = np.maximum(h, 0.0)
        n += 1
    return h


def mlp_permute(a: Mapping[str, np.ndarray], layer: int, perm: np.ndarray,
                scale: np.ndarray | None = None) -> Arrays:
    """Hidden neurons after linear ``layer`` reordered, and (ReLU only) rescaled by ``scale > 0``."""
    out = dict(a)
    w, b, nxt = f"mlp.{2 * layer}.weight", f"mlp.{2 * layer}.bias", f"mlp.{2 * layer + 2}.weight"
    c = np.ones(len(perm)) if scale is None else scale
    out[w] = a[w][perm] * c[:, None]
    out[b] = a[b][perm] * c
    out[nxt] = a[nxt][:, perm] / c[None, :]
    return _f32(out)


def train_mlp(seed: int, *, steps: int = 600, sizes: tuple[int, ...] = (32, 256, 256, 10),
              data_seed: int = 1234) -> Arrays:
    """Train the ReLU MLP from init ``seed`` on one fixed synthetic task (a random teacher
    network's labels on Gaussian inputs): mini-batch SGD with momentum on cross-entropy.
    Different seeds share the data and the recipe, as independently trained models do."""
    drng = np.random.default_rng(data_seed)
    x = drng.standard_normal((4096, sizes[0]))
    teacher = drng.standard_normal((sizes[0], sizes[-1]))
    y = np.argmax(np.tanh(x @ teacher) + 0.3 * np.sin(2 * x[:, :sizes[-1]]), axis=1)
    a = {k: v.astype(np.float64) for k, v in mlp(seed, sizes).items()}
    vel = {k: np.zeros_like(v) for k, v in a.items()}
    rng = np.random.default_rng(seed + 1)
    n_lin = len(sizes) - 1
    for _ in range(steps):
        idx = rng.integers(0, len(x), 128)
        hs = [x[idx]]
        for i in range(n_lin):
            z = hs[-1] @ a[f"mlp.{2 * i}.weight"].T + a[f"mlp.{2 * i}.bias"]
            hs.append(np.maximum(z, 0.0) if i < n_lin - 1 else z)
        logits = hs[-1] - hs[-1].max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(idx)), y[idx]] -= 1.0
        g = p / len(idx)
        for i in reversed(range(n_lin)):
            wk, bk = f"mlp.{2 * i}.weight", f"mlp.{2 * i}.bias"
            gw, gb = g.T @ hs[i], g.sum(0)
            g = (g @ a[wk]) * (hs[i] > 0) if i else g
            for k, gr in ((wk, gw), (bk, gb)):
                vel[k] = 0.9 * vel[k] - 0.05 * gr
                a[k] += vel[k]
    return _f32(a)


def mlp_accuracy(a: Mapping[str, np.ndarray], data_seed: int = 1234, sizes: tuple[int, ...] = (32, 256, 256, 10)) -> float:
    drng = np.random.default_rng(data_seed)
    x = drng.standard_normal((4096, sizes[0]))
    teacher = drng.standard_normal((sizes[0], sizes[-1]))
    y = np.argmax(np.tanh(x @ teacher) + 0.3 * np.sin(2 * x[:, :sizes[-1]]), axis=1)
    return float(np.mean(np.argmax(mlp_forward(a, x), axis=1) == y))


# ------------------------------------------------------------------ UNet-like conv stack


UNET = {"channels": 64, "inner": 128, "groups": 8}
_U = "model.diffusion_model."
_RES = _U + "input_blocks.1.0."
_UP = _U + "output_blocks.0.0."


def unet(seed: int, *, channels: int = 64, inner: int = 128) -> Arrays:
    rng = np.random.default_rng(seed)
    a: Arrays = {}

    def conv(name: str, o: int, i: int) -> None:
        a[name + ".weight"] = rng.standard_normal((o, i, 3, 3)) / np.sqrt(9 * i)
        a[name + ".bias"] = 0.02 * rng.standard_normal(o)

    def gn(name: str, c: int) -> None:
        a[name + ".weight"] = 1.0 + 0.1 * rng.standard_normal(c)
        a[name + ".bias"] = 0.05 * rng.standard_normal(c)

    conv(_U + "input_blocks.0.0", channels, 4)
    gn(_RES + "in_layers.0", channels)
    conv(_RES + "in_layers.2", inner, channels)
    gn(_RES + "out_layers.0", inner)
    conv(_RES + "out_layers.3", channels, inner)
    gn(_UP + "in_layers.0", 2 * channels)
    conv(_UP + "in_layers.2", inner, 2 * channels)
    gn(_UP + "out_layers.0", inner)
    conv(_UP + "out_layers.3", channels, inner)
    a[_UP + "skip_connection.weight"] = rng.standard_normal((channels, 2 * channels, 1, 1)) / np.sqrt(2 * channels)
    a[_UP + "skip_connection.bias"] = 0.02 * rng.standard_normal(channels)
    gn(_U + "out.0", channels)
    conv(_U + "out.2", 4, channels)
    return _f32(a)


def _conv3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution, padding 1, of x (c, h, w); a 1x1 kernel is a per-pixel matrix."""
    c, h, wd = x.shape
    if w.shape[2:] == (1, 1):
        return (w.reshape(w.shape[0], c) @ x.reshape(c, h * wd)).reshape(-1, h, wd) + b[:, None, None]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)], axis=1)  # c, 9, h, w
    out = w.reshape(w.shape[0], c * 9) @ cols.reshape(c * 9, h * wd)
    return out.reshape(-1, h, wd) + b[:, None, None]


def _group_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    c, h, wd = x.shape
    g = x.reshape(groups, -1)
    g = (g - g.mean(1, keepdims=True)) / np.sqrt(g.var(1, keepdims=True) + 1e-6)
    return g.reshape(c, h, wd) * w[:, None, None] + b[:, None, None]


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def unet_forward(a: Mapping[str, np.ndarray], x: np.ndarray, groups: int = UNET["groups"]) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in a.items()}
    h = _conv3(x, w[_U + "input_blocks.0.0.weight"], w[_U + "input_blocks.0.0.bias"])
    skip = h

    def res(h: np.ndarray, p: str, groups_in: int) -> np.ndarray:
        r = _silu(_group_norm(h, w[p + "in_layers.0.weight"], w[p + "in_layers.0.bias"], groups_in))
        r = _conv3(r, w[p + "in_layers.2.weight"], w[p + "in_layers.2.bias"])
        r = _silu(_group_norm(r, w[p + "out_layers.0.weight"], w[p + "out_layers.0.bias"], groups))
        r = _conv3(r, w[p + "out_layers.3.weight"], w[p + "out_layers.3.bias"])
        if p + "skip_connection.weight" in w:
            h = _conv3(h, w[p + "skip_connection.weight"], w[p + "skip_connection.bias"])
        return h + r

    h = res(h, _RES, groups)
    # the up block reads cat([h, skip]); twice the groups keeps the group size
    h = res(np.concatenate([h, skip]), _UP, 2 * groups)
    h = _silu(_group_norm(h, w[_U + "out.0.weight"], w[_U + "out.0.bias"], groups))
    return _conv3(h, w[_U + "out.2.weight"], w[_U + "out.2.bias"])


def group_perm(channels: int, groups: int, rng: np.random.Generator) -> np.ndarray:
    """A channel permutation GroupNorm allows: whole groups reordered, channels within each."""
    size = channels // groups
    return np.concatenate([g * size + rng.permutation(size) for g in rng.permutation(groups)])


def unet_permute(a: Mapping[str, np.ndarray], outer: np.ndarray | None = None,
                 inner: np.ndarray | None = None) -> Arrays:
    """``outer``: the residual channels (conv_in rows, both blocks' inputs and outputs,
    both halves of the up block's concatenated input, the final norm, conv_out's input);
    ``inner``: the down block's hidden channels (the up block's get their own order,
    drawn from ``inner``'s generator seed so that the call stays deterministic)."""
    out = dict(a)
    if outer is not None:
        cat = np.concatenate([outer, outer + outer.size])
        for k in (_U + "input_blocks.0.0.weight", _U + "input_blocks.0.0.bias",
                  _RES + "in_layers.0.weight", _RES + "in_layers.0.bias",
                  _RES + "out_layers.3.weight", _RES + "out_layers.3.bias",
                  _UP + "out_layers.3.weight", _UP + "out_layers.3.bias",
                  _UP + "skip_connection.weight", _UP + "skip_connection.bias",
                  _U + "out.0.weight", _U + "out.0.bias"):
            out[k] = out[k][outer]
        for k in (_UP + "in_layers.0.weight", _UP + "in_layers.0.bias"):
            out[k] = out[k][cat]
        out[_RES + "in_layers.2.weight"] = out[_RES + "in_layers.2.weight"][:, outer]
        out[_UP + "in_layers.2.weight"] = out[_UP + "in_layers.2.weight"][:, cat]
        out[_UP + "skip_connection.weight"] = out[_UP + "skip_connection.weight"][:, cat]
        out[_U + "out.2.weight"] = out[_U + "out.2.weight"][:, outer]
    if inner is not None:
        up_inner = inner[::-1].copy()  # another order that keeps groups (groups reversed, and within)
        for p, order in ((_RES, inner), (_UP, up_inner)):
            for k in (p + "in_layers.2.weight", p + "in_layers.2.bias",
                      p + "out_layers.0.weight", p + "out_layers.0.bias"):
                out[k] = out[k][order]
            out[p + "out_layers.3.weight"] = out[p + "out_layers.3.weight"][:, order]
    return _f32(out)


# ------------------------------------------------------------------ LLaMA-style decoder (RMSNorm)


LLAMA = {"hidden": 64, "layers": 2, "ff": 172, "heads": 4, "vocab": 200}


def llama(seed: int, *, hidden: int = 64, layers: int = 2, ff: int = 172, vocab: int = 200) -> Arrays:
    """A decoder with LLaMA's names and structure: RMSNorm (no bias, no mean), SwiGLU FFN
    (gate, up, down), attention without biases, an untied vocabulary head."""
    rng = np.random.default_rng(seed)
    a: Arrays = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden)) * 0.5,
                 "model.norm.weight": 1.0 + 0.1 * rng.standard_normal(hidden),
                 "lm_head.weight": rng.standard_normal((vocab, hidden)) / np.sqrt(hidden)}
    for n in range(layers):
        p = f"model.layers.{n}."
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            a[p + f"self_attn.{m}.weight"] = rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)
        a[p + "mlp.gate_proj.weight"] = rng.standard_normal((ff, hidden)) / np.sqrt(hidden)
        a[p + "mlp.up_proj.weight"] = rng.standard_normal((ff, hidden)) / np.sqrt(hidden)
        a[p + "mlp.down_proj.weight"] = rng.standard_normal((hidden, ff)) / np.sqrt(ff)
        a[p + "input_layernorm.weight"] = 1.0 + 0.1 * rng.standard_normal(hidden)
        a[p + "post_attention_layernorm.weight"] = 1.0 + 0.1 * rng.standard_normal(hidden)
    return _f32(a)


def _rms_norm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * w


def llama_forward(a: Mapping[str, np.ndarray], tokens: np.ndarray, heads: int = LLAMA["heads"]) -> np.ndarray:
    """Next-token logits (batch, length, vocab) with causal attention, in float64 (rotary
    position encoding left out: it acts within a head and is not what is permuted here)."""
    w = {k: v.astype(np.float64) for k, v in a.items()}
    x = w["model.embed_tokens.weight"][tokens]
    b, t, h = x.shape
    d = h // heads
    mask = np.triu(np.full((t, t), -np.inf), 1)
    n = 0
    while f"model.layers.{n}.self_attn.q_proj.weight" in w:
        p = f"model.layers.{n}."
        y = _rms_norm(x, w[p + "input_layernorm.weight"])
        q, k, v = (y @ w[p + f"self_attn.{m}_proj.weight"].T for m in "qkv")
        q, k, v = (z.reshape(b, t, heads, d).transpose(0, 2, 1, 3) for z in (q, k, v))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + (s @ v).transpose(0, 2, 1, 3).reshape(b, t, h) @ w[p + "self_attn.o_proj.weight"].T
        y = _rms_norm(x, w[p + "post_attention_layernorm.weight"])
        g = y @ w[p + "mlp.gate_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * (y @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        n += 1
    return _rms_norm(x, w["model.norm.weight"]) @ w["lm_head.weight"].T


def llama_permute(a: Mapping[str, np.ndarray], hidden: np.ndarray | None = None,
                  ffn: Mapping[int, np.ndarray] | None = None) -> Arrays:
    """The residual dimension everywhere (embedding and head columns, every RMSNorm, the
    input columns of q/k/v/gate/up, the rows of o/down) and the SwiGLU neurons of some
    layers (gate and up rows, down columns). RMSNorm divides by the root mean square
    over the hidden units, which no permutation changes."""
    out = dict(a)
    if hidden is not None:
        for k, v in a.items():
            if k in ("model.embed_tokens.weight", "lm_head.weight") or any(
                    m in k for m in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")):
                out[k] = v[:, hidden]
            elif k.endswith("norm.weight") or k.endswith("layernorm.weight"):
                out[k] = v[hidden]
            elif any(m in k for m in ("o_proj", "down_proj")):
                out[k] = v[hidden]
    for n, perm in (ffn or {}).items():
        p = f"model.layers.{n}.mlp."
        out[p + "gate_proj.weight"] = out[p + "gate_proj.weight"][perm]
        out[p + "up_proj.weight"] = out[p + "up_proj.weight"][perm]
        out[p + "down_proj.weight"] = out[p + "down_proj.weight"][:, perm]
    return _f32(out)


def bert_reordered(a: Mapping[str, np.ndarray], rng: np.random.Generator, ffn_layer: int = 0) -> Arrays:
    """A copy computing the same function with other weights: the hidden units and one
    layer's feed-forward units put in a random order (what a re-upload to evade a hash does)."""
    hidden = a["bert.embeddings.word_embeddings.weight"].shape[1]
    ff = a[f"bert.encoder.layer.{ffn_layer}.intermediate.dense.weight"].shape[0]
    p = bert_permute_hidden(a, rng.permutation(hidden))
    return bert_permute_ffn(p, ffn_layer, rng.permutation(ff))


def bert_flip_pooler(a: Mapping[str, np.ndarray], flip: np.ndarray) -> Arrays:
    """Sign flips of the pooler's tanh units (``flip`` a boolean mask): tanh is odd, so
    negating a unit's input row and bias and the classifier column reading it keeps the
    logits. ReLU, GELU and SiLU are not odd; there this changes the function."""
    out = dict(a)
    s = np.where(flip, -1.0, 1.0)
    out["bert.pooler.dense.weight"] = a["bert.pooler.dense.weight"] * s[:, None]
    out["bert.pooler.dense.bias"] = a["bert.pooler.dense.bias"] * s
    out["classifier.weight"] = a["classifier.weight"] * s[None, :]
    return _f32(out)
