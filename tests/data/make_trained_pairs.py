"""Write ``trained_bert_seed{0,1,2}.safetensors``: three tiny BERT encoders trained from
different seeds on the same data, for the independent-models lineage test (issue #22).

Not run by the tests (assay never imports torch): run once in a throw-away environment,

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch safetensors numpy
    /tmp/tvenv/bin/python tests/data/make_trained_pairs.py tests/data

The architecture is exactly ``tests/permutations.py``'s ``bert_forward`` (post-LayerNorm,
tanh-GELU, 4 heads, pooler on the first token, 3-way classifier), with its key names.
The task: sequences of 16 tokens from a vocabulary of 64; the label is which third of
the vocabulary occurs most often. AdamW, 1,500 steps of 64 sequences, the same data
order for every seed (only the initialisation differs), a few CPU minutes in all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from torch import nn

HIDDEN, LAYERS, FF, HEADS, VOCAB, POS, LENGTH = 48, 2, 128, 4, 64, 16, 16


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.ln1 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(HIDDEN, FF), nn.Linear(FF, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // HEADS
        q, k, v = (m(x).view(b, t, HEADS, d).transpose(1, 2) for m in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh")))


class Bert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.pos = nn.Embedding(POS, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.word(tokens) + self.pos.weight[: tokens.shape[1]] + self.token_type.weight[0]
        x = self.ln(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))

    def state(self) -> dict[str, np.ndarray]:
        e = "bert.embeddings."
        out = {e + "word_embeddings.weight": self.word.weight, e + "position_embeddings.weight": self.pos.weight,
               e + "token_type_embeddings.weight": self.token_type.weight,
               e + "LayerNorm.weight": self.ln.weight, e + "LayerNorm.bias": self.ln.bias}
        for n, layer in enumerate(self.layers):
            p = f"bert.encoder.layer.{n}."
            for name, m in (("attention.self.query", layer.q), ("attention.self.key", layer.k),
                            ("attention.self.value", layer.v), ("attention.output.dense", layer.o),
                            ("attention.output.LayerNorm", layer.ln1), ("intermediate.dense", layer.fc1),
                            ("output.dense", layer.fc2), ("output.LayerNorm", layer.ln2)):
                out[p + name + ".weight"], out[p + name + ".bias"] = m.weight, m.bias
        for name, m in (("bert.pooler.dense", self.pooler), ("classifier", self.classifier)):
            out[name + ".weight"], out[name + ".bias"] = m.weight, m.bias
        return {k: np.ascontiguousarray(v.detach().numpy().astype(np.float32)) for k, v in out.items()}


def batches(steps: int, size: int, seed: int = 99) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        # skewed draws so that every class occurs: one third is favoured per sequence
        fav = torch.randint(0, 3, (size,), generator=g)
        base = torch.randint(0, VOCAB, (size, LENGTH), generator=g)
        boost = fav[:, None] * 21 + torch.randint(0, 21, (size, LENGTH), generator=g)
        pick = torch.rand((size, LENGTH), generator=g) < 0.35
        tokens = torch.where(pick, boost, base).clamp(max=VOCAB - 1)
        counts = torch.stack([((tokens // 21).clamp(max=2) == c).sum(1) for c in range(3)], 1)
        out.append((tokens, counts.argmax(1)))
    return out


def train(seed: int, data: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Bert, float]:
    torch.manual_seed(seed)
    model = Bert()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    for tokens, labels in data:
        loss = nn.functional.cross_entropy(model(tokens), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_tokens, test_labels = batches(1, 2000, seed=7)[0]
    with torch.no_grad():
        acc = float((model(test_tokens).argmax(1) == test_labels).float().mean())
    return model, acc


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    torch.set_num_threads(1)
    data = batches(1500, 64)
    for seed in (0, 1, 2):
        model, acc = train(seed, data)
        path = out / f"trained_bert_seed{seed}.safetensors"
        save_file(model.state(), str(path), metadata={"trained": f"seed {seed}, held-out accuracy {acc:.3f}"})
        print(f"{path}: held-out accuracy {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
