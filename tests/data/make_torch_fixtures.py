"""Make the tiny PyTorch checkpoints in tests/data with the real torch (run once).

Run in a throw-away venv, never the project's (assay has no torch at run time):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0
    /tmp/torchvenv/bin/python tests/data/make_torch_fixtures.py

Writes tiny_state_dict_zip.pt (torch.save, zip format) and
tiny_state_dict_legacy.pt (_use_new_zipfile_serialization=False) holding the same
random state dict, tiny_module_zip.pt (a whole nn.Sequential pickled, with known
weights), plus tiny_state_dict.json: names, dtypes, shapes and values as
plain lists, the independent reference the tests compare the readers with.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    g = torch.Generator().manual_seed(1234)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd["conv.bias"] = torch.randn(4, generator=g)
    sd["norm.weight"] = torch.randn(4, generator=g).to(torch.float16)
    sd["proj.weight"] = torch.randn(5, 4, generator=g).to(torch.bfloat16)
    # A transposed view that shares storage with proj2: exercises strides and offsets.
    base = torch.randn(3, 6, generator=g)
    sd["proj2.weight"] = base
    sd["proj2.weight_t"] = base.t()
    sd["proj2.row1"] = base[1]
    sd["steps"] = torch.tensor([7, -3, 11], dtype=torch.int64)
    sd["mask"] = torch.tensor([True, False, True])
    sd["fp8"] = torch.randn(6, generator=g).to(torch.float8_e4m3fn)
    torch.save(sd, HERE / "tiny_state_dict_zip.pt")
    # A whole module pickled (not its state dict): layer classes in the pickle.
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    with torch.no_grad():
        module[0].weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3))
        module[0].bias.copy_(torch.tensor([-1.0, 1.0]))
    torch.save(module, HERE / "tiny_module_zip.pt")
    torch.save(sd, HERE / "tiny_state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    names = {
        torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3",
    }
    ref = {
        k: {
            "dtype": names[v.dtype],
            "shape": list(v.shape),
            "values": v.float().flatten().tolist() if v.dtype != torch.bool else v.flatten().tolist(),
        }
        for k, v in sd.items()
    }
    (HERE / "tiny_state_dict.json").write_text(json.dumps(ref, indent=1) + "\n")


if __name__ == "__main__":
    main()
