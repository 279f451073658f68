"""Weights stored by the Hugging Face quantizers, read back as the float weights they
stand for. Lineage compares values: a flagged model republished as GPTQ, AWQ or
bitsandbytes 8-/4-bit (LLMs on model hubs; FLUX NF4 checkpoints) is still that model, but
its packed integers were "non-float tensors, not fingerprinted" and nothing was compared.

Layouts, as safetensors keys beside a linear layer's prefix ``P`` (the float weight the
layer stands for is ``P.weight``, shape (out, in)):

- GPTQ (AutoGPTQ, GPTQModel, transformers' ``gptq``): ``P.qweight`` int32 [in*bits/32, out],
  ``bits`` (2, 4 or 8) packed along the input, lowest first; ``P.qzeros`` int32
  [groups, out*bits/32] packed along the output, each zero point stored minus one (the v1
  checkpoint format of most models on the Hub) or as it is (GPTQModel's ``gptq_v2``, named
  by ``checkpoint_format``, or ``format`` in its newer versions, in ``quantize_config.json``
  or config.json's ``quantization_config``); ``P.scales`` [groups, out]; ``P.g_idx``
  int32 [in], each input's group (``i // group_size`` without it).
  ``W[o, i] = scales[g, o] * (q[i, o] - zero[g, o])``.
- AWQ (AutoAWQ's GEMM layout): ``P.qweight`` int32 [in, out/8], 4 bits packed along the
  output in the order 0 2 4 6 1 3 5 7; ``P.qzeros`` int32 [groups, out/8] the same (zero
  points as they are); ``P.scales`` [groups, out].
- AWQ (AutoAWQ's GEMV layout, ``"version": "gemv"``): ``P.qweight`` int32 [out, in/8], 4 bits
  packed along the input in order; ``P.qzeros`` int32 [out, width] the same, ``P.scales``
  [out, width*8], both padded past the last group (``width``: groups over 8, rounded up, then
  up to a multiple of 128 / group_size for groups under 128).
- bitsandbytes 8-bit (LLM.int8): ``P.weight`` int8 [out, in] and ``P.SCB`` float32 [out]:
  ``W = weight * SCB / 127``.
- bitsandbytes 4-bit (NF4, FP4): ``P.weight`` uint8, two 4-bit codes a byte (the first in
  the high half); ``P.weight.absmax`` per block; ``P.weight.quant_map`` the 16 code
  values; ``P.weight.quant_state.bitsandbytes__nf4`` (or ``__fp4``) a JSON blob with the
  shape and block size. With double quantization the absmax values are uint8 codes of
  ``P.weight.nested_quant_map`` times ``P.weight.nested_absmax`` per nested block, plus
  the blob's ``nested_offset``.

A group whose parts disagree in shape or size is left as it is (not dequantized): values
are never guessed. Only the lineage fingerprint reads this view; the model's own tensor
list, hashes and safety checks see the file as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import TensorInfo

if TYPE_CHECKING:
    import numpy as np

# numpy is imported only where a quantized layer is found: `assay model` on a small
# plain file starts without it (tests/test_cli_startup.py).
Loader = Callable[[], Any]
_AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
_QUANTIZED_PARTS = (".qweight", ".SCB", ".weight.absmax")
_FLOATS = {"F16", "BF16", "F32"}
_MAX_JSON = 1 << 16


def quantized_view(tensors: Mapping[str, TensorInfo], array: Callable[..., np.ndarray],
                   metadata: Mapping[str, Any] | None = None) -> tuple[dict[str, TensorInfo], dict[str, Loader]]:
    """(tensors with every quantized layer's parts replaced by one ``P.weight`` entry whose
    dtype names the scheme, loaders of those entries' float32 values). ``array(name,
    convert=...)`` reads a stored tensor (ModelFile.array); ``metadata`` is the model's (an
    ONNX model's ``onnx.dequantize``: weights behind DequantizeLinear nodes). Unchanged
    when nothing is quantized."""
    onnx = (metadata or {}).get("onnx")
    dq = onnx.get("dequantize") if isinstance(onnx, dict) else None
    if not dq and not any(k.endswith(_QUANTIZED_PARTS) for k in tensors):
        return dict(tensors), {}
    view = dict(tensors)
    loaders: dict[str, Loader] = {}
    for param, spec in (dq or {}).items():
        found = _onnx_dq(str(param), spec, tensors, array)
        if found is not None:
            info, parts, loader = found
            for part in parts:
                view.pop(part, None)
            view[info.name] = info
            loaders[info.name] = loader
    packing = _packing(metadata or {})
    for key in list(tensors):
        if key.endswith(".qweight"):
            found = _gptq_or_awq(key[: -len(".qweight")], tensors, array, packing)
        elif key.endswith(".SCB"):
            found = _bnb_int8(key[: -len(".SCB")], tensors, array)
        elif key.endswith(".weight.absmax"):
            found = _bnb_4bit(key[: -len(".weight.absmax")], tensors, array)
        else:
            continue
        if found is None:
            continue
        info, parts, loader = found
        for part in parts:
            view.pop(part, None)
        view[info.name] = info
        loaders[info.name] = loader
    return view, loaders


def _packing(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What the quantizer's config says of its packing: ``quant_method``,
    ``checkpoint_format`` (GPTQModel: ``gptq`` or ``gptq_v2``, also as ``format``), ``version`` (AutoAWQ:
    ``gemm`` or ``gemv``), ``group_size``."""
    config = metadata.get("config")
    found: dict[str, Any] = {}
    for qc in (config.get("quantization_config") if isinstance(config, dict) else None,
               metadata.get("quantize_config")):
        if not isinstance(qc, dict):
            continue
        for key in ("checkpoint_format", "version", "quant_method"):
            if isinstance(qc.get(key), str):
                found.setdefault(key, qc[key].lower())
        # GPTQModel's newer name for checkpoint_format (the old one kept as an alias)
        if isinstance(qc.get("format"), str) and qc["format"].lower() in ("gptq", "gptq_v2"):
            found.setdefault("checkpoint_format", qc["format"].lower())
        for key in ("group_size", "q_group_size"):
            if isinstance(qc.get(key), int) and not isinstance(qc.get(key), bool):
                found.setdefault("group_size", qc[key])
    return found


def _awq_zeros_width(n_in: int, group: int) -> int:
    """Columns of an AutoAWQ GEMV layer's qzeros (its calculate_zeros_width)."""
    multiple = 1 if group >= 128 else {64: 2, 32: 4}.get(group, 0)
    if not multiple:
        return -1
    width = -(-(n_in // group) // 8)
    return -(-width // multiple) * multiple


def _virtual(like: TensorInfo, name: str, dtype: str, shape: tuple[int, ...]) -> TensorInfo:
    return replace(like, name=name, dtype=dtype, shape=shape, offset=0, nbytes=0, strides=None, entry=None)


def _get(tensors: Mapping[str, TensorInfo], key: str, dtypes: set[str], ndim: int) -> TensorInfo | None:
    info = tensors.get(key)
    return info if info is not None and info.dtype in dtypes and len(info.shape) == ndim else None


def _unpack(words: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """uint8 codes of int32 ``words`` packed ``32 // bits`` a word, lowest first, along
    ``axis`` (0: rows, 1: columns) of the 2-D result."""
    import numpy as np

    per = 32 // bits
    shifts = np.arange(per, dtype=np.uint32) * bits
    u = np.ascontiguousarray(words).view(np.uint32)
    if axis == 0:
        codes = (u[:, None, :] >> shifts[None, :, None]) & ((1 << bits) - 1)
        return codes.astype(np.uint8).reshape(u.shape[0] * per, u.shape[1])
    codes = (u[:, :, None] >> shifts[None, None, :]) & ((1 << bits) - 1)
    return codes.astype(np.uint8).reshape(u.shape[0], u.shape[1] * per)


def _gptq_or_awq(p: str, tensors: Mapping[str, TensorInfo], array: Callable[..., np.ndarray],
                 packing: Mapping[str, Any]) -> tuple[TensorInfo, list[str], Loader] | None:
    import numpy as np

    qw = _get(tensors, f"{p}.qweight", {"I32", "U32"}, 2)
    qz = _get(tensors, f"{p}.qzeros", {"I32", "U32"}, 2)
    sc = _get(tensors, f"{p}.scales", _FLOATS, 2)
    if qw is None or qz is None or sc is None:
        return None
    gemv = _awq_gemv(p, qw, qz, sc, array, packing)
    if packing.get("version") == "gemv":
        return gemv
    # Small layers can fit both GPTQ's shapes (with groups of 8) and GEMV's: without the
    # quantizer's config, such a layer is not read by guesswork.
    unsure = gemv is not None and not packing.get("quant_method")
    groups, out = sc.shape
    parts = [qw.name, qz.name, sc.name]
    if groups < 1 or qz.shape[0] != groups:
        return None
    if qw.shape[1] == out:  # GPTQ: packed along the input
        if (32 * qz.shape[1]) % out:
            return None
        bits = 32 * qz.shape[1] // out
        if bits not in (2, 4, 8):
            return None
        n_in = qw.shape[0] * 32 // bits
        gi = _get(tensors, f"{p}.g_idx", {"I32", "I64"}, 1)
        if gi is not None and gi.shape != (n_in,):
            return None
        if gi is None and n_in % groups:
            return None
        if gi is not None:
            parts.append(gi.name)
        group = n_in // groups
        offset = 0.0 if packing.get("checkpoint_format") == "gptq_v2" else 1.0  # v1 stores zero - 1

        def gptq() -> np.ndarray:
            q = _unpack(array(qw.name), bits, 0)  # [in, out]
            zero = _unpack(array(qz.name), bits, 1).astype(np.float32) + offset  # [groups, out]
            scales = array(sc.name, convert=True).astype(np.float32)
            g = np.asarray(array(gi.name), dtype=np.int64) if gi is not None else np.arange(n_in) // group
            if g.min(initial=0) < 0 or g.max(initial=0) >= groups:
                raise ValueError("g_idx names a group the scales do not have")
            return ((q.astype(np.float32) - zero[g]) * scales[g]).T

        return None if unsure else (_virtual(qw, f"{p}.weight", f"GPTQ-{bits}bit-g{group}", (out, n_in)), parts, gptq)
    if qw.shape[1] * 8 == out and qz.shape[1] * 8 == out and qw.shape[0] % groups == 0:  # AWQ (GEMM)
        n_in = qw.shape[0]
        group = n_in // groups

        def awq() -> np.ndarray:
            def cols(words: np.ndarray) -> np.ndarray:
                packed = _unpack(words, 4, 1).reshape(words.shape[0], -1, 8)
                ordered = np.empty_like(packed)
                ordered[:, :, list(_AWQ_ORDER)] = packed
                return ordered.reshape(words.shape[0], -1)

            q = cols(array(qw.name)).astype(np.float32)  # [in, out]
            zero = cols(array(qz.name)).astype(np.float32)
            scales = array(sc.name, convert=True).astype(np.float32)
            g = np.arange(n_in) // group
            return ((q - zero[g]) * scales[g]).T

        return None if unsure else (_virtual(qw, f"{p}.weight", f"AWQ-4bit-g{group}", (out, n_in)), parts, awq)
    return gemv  # no config at hand: by its shapes alone


def _awq_gemv(p: str, qw: TensorInfo, qz: TensorInfo, sc: TensorInfo, array: Callable[..., np.ndarray],
              packing: Mapping[str, Any]) -> tuple[TensorInfo, list[str], Loader] | None:
    """AutoAWQ's GEMV layout (the module doc). The group size is the config's, or the one
    size whose padded width the zero points have; two that fit leave the layer as stored."""
    import numpy as np

    out, n_in = qw.shape[0], qw.shape[1] * 8
    if qz.shape[0] != out or sc.shape != (out, qz.shape[1] * 8):
        return None
    sizes = [packing["group_size"]] if isinstance(packing.get("group_size"), int) else [
        g for g in (32, 64, 128, 256, 512, 1024, n_in) if n_in % g == 0]
    fits = sorted({g for g in sizes if 0 < g <= n_in and n_in % g == 0 and _awq_zeros_width(n_in, g) == qz.shape[1]})
    if len(fits) != 1:
        return None
    group = fits[0]
    groups = n_in // group

    def gemv() -> np.ndarray:
        q = _unpack(array(qw.name), 4, 1).astype(np.float32)  # [out, in]
        zero = _unpack(array(qz.name), 4, 1)[:, :groups].astype(np.float32)
        scales = array(sc.name, convert=True)[:, :groups].astype(np.float32)
        g = np.arange(n_in) // group
        return (q - zero[:, g]) * scales[:, g]

    return _virtual(qw, f"{p}.weight", f"AWQ-4bit-g{group}", (out, n_in)), [qw.name, qz.name, sc.name], gemv


def _onnx_dq(param: str, spec: Any, tensors: Mapping[str, TensorInfo], array: Callable[..., np.ndarray]
             ) -> tuple[TensorInfo, list[str], Loader] | None:
    """A weight behind an ONNX DequantizeLinear node: ``(x - zero_point) * scale``, the scale
    (and zero point) one value or one per index of ``axis`` (ONNX's definition)."""
    import numpy as np

    try:
        xname, sname, zname, axis, transposed = spec
        axis = int(axis)
    except (TypeError, ValueError):
        return None
    x, sc = tensors.get(str(xname)), tensors.get(str(sname))
    zp = tensors.get(str(zname)) if zname else None
    if x is None or sc is None or len(x.shape) != 2 or (zname and zp is None):
        return None
    if not -2 <= axis < 2:
        return None
    axis %= 2
    per_index = sc.numel != 1
    if (per_index and sc.shape != (x.shape[axis],)) or (zp is not None and zp.numel != sc.numel):
        return None
    parts = [x.name, sc.name] + ([zp.name] if zp is not None else [])

    def dequantize() -> np.ndarray:
        shape = [1, 1]
        shape[axis] = -1
        scale = array(sc.name, convert=True).astype(np.float32).reshape(shape if per_index else (1, 1))
        zero = np.asarray(array(zp.name), dtype=np.float32).reshape(scale.shape) if zp is not None else 0.0
        w = (np.asarray(array(x.name), dtype=np.float32) - zero) * scale
        return w.T if transposed else w

    shape = (x.shape[1], x.shape[0]) if transposed else x.shape
    kind = f"ONNX-{'int8' if x.dtype == 'I8' else 'uint8'}{'-per-channel' if per_index else ''}"
    return _virtual(x, param, kind, shape), parts, dequantize


def _bnb_int8(p: str, tensors: Mapping[str, TensorInfo], array: Callable[..., np.ndarray]
              ) -> tuple[TensorInfo, list[str], Loader] | None:
    import numpy as np

    w = _get(tensors, f"{p}.weight", {"I8"}, 2)
    scb = _get(tensors, f"{p}.SCB", {"F32", "F16", "BF16"}, 1)
    if w is None or scb is None or scb.shape != (w.shape[0],):
        return None
    parts = [w.name, scb.name] + [k for k in (f"{p}.weight_format",) if k in tensors]

    def int8() -> np.ndarray:
        rows = array(scb.name, convert=True).astype(np.float32)
        return array(w.name).astype(np.float32) * (rows[:, None] / 127.0)

    return _virtual(w, f"{p}.weight", "bnb-int8", w.shape), parts, int8


def _bnb_4bit(p: str, tensors: Mapping[str, TensorInfo], array: Callable[..., np.ndarray]
              ) -> tuple[TensorInfo, list[str], Loader] | None:
    import numpy as np

    w = tensors.get(f"{p}.weight")
    qmap = _get(tensors, f"{p}.weight.quant_map", {"F32"}, 1)
    state = next((tensors[k] for k in (f"{p}.weight.quant_state.bitsandbytes__nf4",
                                       f"{p}.weight.quant_state.bitsandbytes__fp4") if k in tensors), None)
    absmax = tensors.get(f"{p}.weight.absmax")
    if w is None or w.dtype != "U8" or qmap is None or qmap.shape != (16,) or state is None or absmax is None:
        return None
    if state.dtype != "U8" or len(state.shape) != 1 or state.numel > _MAX_JSON:
        return None
    try:
        meta = json.loads(bytes(np.asarray(array(state.name))).decode("utf-8"))
        shape = tuple(int(d) for d in meta["shape"])
        block = int(meta["blocksize"])
        kind = str(meta.get("quant_type") or state.name.rsplit("__", 1)[-1])
        nested = "nested_blocksize" in meta
        nested_block = int(meta["nested_blocksize"]) if nested else 0
        offset = float(meta.get("nested_offset", 0.0)) if nested else 0.0
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    n = int(np.prod(shape)) if shape else 0
    if len(shape) != 2 or n < 1 or block < 1 or (n + 1) // 2 != w.numel or absmax.numel != -(-n // block):
        return None
    parts = [w.name, qmap.name, state.name, absmax.name]
    if nested:
        nmax = _get(tensors, f"{p}.weight.nested_absmax", {"F32"}, 1)
        nmap = _get(tensors, f"{p}.weight.nested_quant_map", {"F32"}, 1)
        if absmax.dtype != "U8" or nmax is None or nmap is None or nmap.shape != (256,) or nested_block < 1 \
                or nmax.numel != -(-absmax.numel // nested_block):
            return None
        parts += [nmax.name, nmap.name]
    elif absmax.dtype not in _FLOATS:
        return None

    def four_bit() -> np.ndarray:
        packed = np.asarray(array(w.name)).reshape(-1)
        codes = np.empty(packed.size * 2, dtype=np.uint8)
        codes[0::2] = packed >> 4
        codes[1::2] = packed & 0x0F
        if nested:
            idx = np.asarray(array(absmax.name)).reshape(-1)
            scale = array(nmap.name)[idx] * np.repeat(array(nmax.name), nested_block)[: idx.size] + offset
        else:
            scale = array(absmax.name, convert=True).reshape(-1)
        values = array(qmap.name)[codes[:n]] * np.repeat(scale.astype(np.float32), block)[:n]
        return values.astype(np.float32).reshape(shape)

    return _virtual(w, f"{p}.weight", f"bnb-{kind}-b{block}", shape), parts, four_bit


# -- the rounding each scheme causes (lineage's tolerance for "the same weights") ----------

NF4 = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0)


def rounding_error(qtype: str) -> float | None:
    """Relative RMS error that a scheme named as ``quantized_view`` names it gives on
    Gaussian weights, by round-to-nearest with its bits and group (GPTQ's own rounding
    is at most this), or None for a name of another kind."""
    import numpy as np

    x = np.random.default_rng(0).standard_normal((64, 1024)).astype(np.float32)
    head, _, rest = qtype.partition("-")
    try:
        if head in ("GPTQ", "AWQ"):
            bits_s, group_s = rest.split("-")
            bits, group = int(bits_s.removesuffix("bit")), int(group_s.removeprefix("g"))
            g = x.reshape(x.shape[0], -1, min(group, x.shape[1]))
            lo, hi = g.min(axis=2, keepdims=True), g.max(axis=2, keepdims=True)
            scale = (hi - lo) / ((1 << bits) - 1)
            zero = np.round(-lo / scale)
            y = ((np.clip(np.round(g / scale) + zero, 0, (1 << bits) - 1) - zero) * scale).reshape(x.shape)
        elif head == "ONNX" and rest.endswith("-per-channel"):
            scale = np.abs(x).max(axis=1, keepdims=True) / 127.0
            y = np.round(x / scale) * scale
        elif head == "ONNX":  # one scale for the tensor: its largest value sets the step
            scale = np.abs(x).max() / 127.0
            y = np.round(x / scale) * scale
        elif qtype == "bnb-int8":
            scale = np.abs(x).max(axis=1, keepdims=True) / 127.0
            y = np.round(x / scale) * scale
        elif head == "bnb" and rest.startswith(("nf4-b", "fp4-b")):
            block = int(rest.split("-b")[1])
            b = x.reshape(-1, block)
            amax = np.abs(b).max(axis=1, keepdims=True)
            code = np.array(NF4, dtype=np.float32) if rest.startswith("nf4") else np.array(
                [0, 0.0052, 0.6667, 1.0, 0.3333, 0.5, 0.1667, 0.25, 0, -0.0052, -0.6667, -1.0, -0.3333, -0.5,
                 -0.1667, -0.25], dtype=np.float32)
            idx = np.abs((b / amax)[:, :, None] - code[None, None, :]).argmin(axis=2)
            y = (code[idx] * amax).reshape(x.shape)
        else:
            return None
    except (ValueError, IndexError, ZeroDivisionError):
        return None
    return float(np.linalg.norm(y - x) / np.linalg.norm(x))
