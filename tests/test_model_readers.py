"""Model readers: safetensors, torch zip / legacy / TorchScript, GGUF, diffusers and
PEFT folders. Expected values come from independent writers (safetensors, gguf,
the real torch via tests/data) or from bit patterns worked out by hand."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assay.config import Limits
from assay.errors import DecodeError, InputError, TooLarge, UnsupportedFormat
from assay.models import ModelFile, TensorInfo, open_model

DATA = Path(__file__).parent / "data"
TORCH_REF = json.loads((DATA / "tiny_state_dict.json").read_text())


def write_safetensors(
    path: Path, header: dict[str, Any], data: bytes, *, raw_header: bytes | None = None
) -> Path:
    """A hand-built safetensors file (our own writer, for cases no library writes)."""
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


# -- safetensors -------------------------------------------------------------------------


def test_safetensors_matches_reference_writer(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((2, 3)),
        "f32": rng.standard_normal((4, 5)).astype(np.float32),
        "f16": rng.standard_normal((7,)).astype(np.float16),
        "i64": rng.integers(-9, 9, (3,)).astype(np.int64),
        "i32": rng.integers(-9, 9, (2, 2)).astype(np.int32),
        "i16": rng.integers(-9, 9, (5,)).astype(np.int16),
        "i8": rng.integers(-9, 9, (5,)).astype(np.int8),
        "u8": rng.integers(0, 255, (6,)).astype(np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    p = tmp_path / "m.safetensors"
    st.save_file(arrays, str(p), metadata={"ss_network_dim": "16", "format": "pt"})
    with open_model(p) as m:
        assert m.format == "safetensors"
        assert m.metadata == {"ss_network_dim": "16", "format": "pt"}
        assert set(m.tensors) == set(arrays)
        (n,) = struct.unpack("<Q", p.read_bytes()[:8])
        assert m.data_offset == 8 + n
        for name, ref in arrays.items():
            got = m.array(name)
            assert got.dtype == ref.dtype and got.shape == ref.shape
            assert np.array_equal(got, ref)
            assert not got.flags.writeable  # a view over a read-only map, not a copy
        # tensors are listed in data order and tile the data section
        infos = list(m.tensors.values())
        assert [t.offset for t in infos] == sorted(t.offset for t in infos)
        assert infos[0].offset == m.data_offset
        assert infos[-1].offset + infos[-1].nbytes == p.stat().st_size


def test_bf16_and_fp8_bit_patterns(tmp_path: Path) -> None:
    # Patterns worked out from the formats' definitions, not from our decoder.
    bf16 = np.array([0x3F80, 0xC000, 0x3F00, 0x7F80], dtype="<u2")  # 1, -2, 0.5, inf
    e4m3 = np.array([0x38, 0x40, 0xC0, 0x7E, 0x7F, 0x01], dtype=np.uint8)  # 1 2 -2 448 nan 2^-9
    e5m2 = np.array([0x3C, 0x40, 0x7C, 0x01], dtype=np.uint8)  # 1 2 inf 2^-16
    e8m0 = np.array([127, 128, 0, 255], dtype=np.uint8)  # 1 2 2^-127 nan
    blobs = [bf16.tobytes(), e4m3.tobytes(), e5m2.tobytes(), e8m0.tobytes()]
    names = ["bf", "e4", "e5", "e8"]
    dtypes = ["BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"]
    header, pos = {}, 0
    for name, dt, blob, arr in zip(names, dtypes, blobs, [bf16, e4m3, e5m2, e8m0], strict=True):
        header[name] = {"dtype": dt, "shape": [arr.size], "data_offsets": [pos, pos + len(blob)]}
        pos += len(blob)
    p = write_safetensors(tmp_path / "f8.safetensors", header, b"".join(blobs))
    with open_model(p) as m:
        assert m.array("bf").dtype == np.uint16 and np.array_equal(m.array("bf"), bf16)
        assert np.array_equal(m.array("e4"), e4m3)
        np.testing.assert_array_equal(m.array("bf", convert=True), [1.0, -2.0, 0.5, np.inf])
        np.testing.assert_array_equal(
            m.array("e4", convert=True), [1.0, 2.0, -2.0, 448.0, np.nan, 2.0**-9]
        )
        np.testing.assert_array_equal(m.array("e5", convert=True), [1.0, 2.0, np.inf, 2.0**-16])
        np.testing.assert_array_equal(m.array("e8", convert=True), [1.0, 2.0, 2.0**-127, np.nan])
        assert m.array("e4", convert=True).dtype == np.float32


def test_safetensors_shared_file(testdata: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    p = testdata / "models" / "silero_vad_16k.safetensors"
    ref = st.load_file(str(p))
    with open_model(p) as m:
        assert set(m.tensors) == set(ref)
        for name, arr in ref.items():
            assert np.array_equal(m.array(name), arr)


def _valid_header() -> dict[str, Any]:
    return {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "I8", "shape": [4], "data_offsets": [8, 12]},
    }


BAD_HEADERS: list[tuple[str, Any, bytes, str]] = [
    ("not-json", None, b"{not json", "not valid JSON"),
    ("not-object", None, b"[1, 2]", "JSON object"),
    ("bad-utf8", None, b'{"\xff": 1}', "UTF-8"),
    ("dup-key", None, b'{"a": {}, "a": {}}', "repeats the key"),
    ("entry-not-dict", {"a": [1]}, b"", "not a JSON object"),
    ("meta-not-str", {"__metadata__": {"k": 1}, **_valid_header()}, b"", "__metadata__"),
    ("dtype", {"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, b"", "unknown dtype"),
    ("shape-neg", {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"", "shape"),
    ("shape-bool", {"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"", "shape"),
    ("shape-float", {"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, b"", "shape"),
    ("offsets-3", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, b"", "two integers"),
    ("offsets-rev", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"", "not ordered"),
    ("past-end", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"", "past the data"),
    ("size", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}}, b"", "needs 8 bytes"),
    (
        "overflow",
        {"a": {"dtype": "F32", "shape": [2**62, 2**62, 4], "data_offsets": [0, 12]}},
        b"",
        "needs",
    ),
    (
        "gap",
        {
            "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        },
        b"",
        "gap of 4 bytes",
    ),
    (
        "overlap",
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
        },
        b"",
        "overlaps",
    ),
    ("trailing", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"", "not covered"),
]


@pytest.mark.parametrize(("case", "header", "raw", "reason"), BAD_HEADERS, ids=[c[0] for c in BAD_HEADERS])
def test_safetensors_rejects(tmp_path: Path, case: str, header: Any, raw: bytes, reason: str) -> None:
    p = tmp_path / f"{case}.safetensors"
    write_safetensors(p, header or {}, bytes(12), raw_header=raw or None)
    with pytest.raises(DecodeError) as ei:
        open_model(p)
    assert reason in ei.value.reason
    assert ei.value.path == str(p)


def test_safetensors_header_length_checks(tmp_path: Path) -> None:
    p = tmp_path / "long.safetensors"
    p.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(DecodeError, match="runs past the end"):
        open_model(p)
    p.write_bytes(struct.pack("<Q", 200 * 1024**2) + b"{}")
    with pytest.raises(TooLarge, match="exceeds"):
        open_model(p)
    p.write_bytes(b"\x01\x00")
    with pytest.raises(DecodeError, match="too short"):
        open_model(p)


def test_safetensors_zero_size_tensors_share_offsets(tmp_path: Path) -> None:
    header = {
        "e1": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "e2": {"dtype": "F16", "shape": [3, 0], "data_offsets": [4, 4]},
    }
    p = write_safetensors(tmp_path / "z.safetensors", header, struct.pack("<f", 2.5))
    with open_model(p) as m:
        assert m.array("e2").shape == (3, 0)
        assert m.array("a")[0] == 2.5


# -- PyTorch pickles (fixtures made once with the real torch 2.13) ---------------------------


def _check_against_torch(m: ModelFile) -> None:
    assert set(m.tensors) == set(TORCH_REF)
    for name, ref in TORCH_REF.items():
        info = m.tensors[name]
        assert info.dtype == ref["dtype"], name
        assert list(info.shape) == ref["shape"], name
        got = m.array(name, convert=info.dtype != "BOOL")
        np.testing.assert_array_equal(got.reshape(-1), np.array(ref["values"], dtype=got.dtype))


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [("tiny_state_dict_zip.pt", "torch-zip"), ("tiny_state_dict_legacy.pt", "torch-legacy")],
)
def test_torch_checkpoints_match_torch(fixture: str, fmt: str) -> None:
    with open_model(DATA / fixture) as m:
        assert m.format == fmt
        assert m.pickles and all(r.verdict == "safe" for r in m.pickles)
        _check_against_torch(m)
        # proj2.weight_t is a transposed view: same storage, explicit strides
        t = m.tensors["proj2.weight_t"]
        assert t.strides == (1, 6)
        assert t.offset == m.tensors["proj2.weight"].offset
        assert m.tensors["proj2.row1"].offset == t.offset + 6 * 4
    if fmt == "torch-legacy":
        assert len(m.pickles) == 5  # magic, protocol, sys info, data, keys


def test_whole_module_pickle() -> None:
    # torch.save(nn.Sequential(Linear(3, 2), ReLU())) with weights set by the fixture script
    with open_model(DATA / "tiny_module_zip.pt") as m:
        assert set(m.tensors) == {"0.weight", "0.bias"}  # as module.state_dict() names them
        assert np.array_equal(m.array("0.weight"), np.arange(6, dtype=np.float32).reshape(2, 3))
        assert np.array_equal(m.array("0.bias"), [-1.0, 1.0])
        assert [r.verdict for r in m.pickles] == ["safe"]
        assert "torch.nn.modules.linear.Linear" in m.pickles[0].globals


def _pstr(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _tensor_op(key: str, numel: int) -> bytes:
    """Opcodes torch.save writes for a 1-D float32 tensor over storage ``key``."""
    return (
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"(" + _pstr("storage") + b"ctorch\nFloatStorage\n" + _pstr(key) + _pstr("cpu")
        + b"J" + struct.pack("<i", numel) + b"tQ"
        + b"K\x00" + b"J" + struct.pack("<i", numel) + b"\x85" + b"K\x01\x85"
        + b"\x89ccollections\nOrderedDict\n)RtR"
    )


def test_training_checkpoint_names_the_state_dict(tmp_path: Path) -> None:
    # {"state_dict": {"w": tensor}, "optimizer_states": [{"exp_avg": tensor}],
    #  "epoch": 5, "global_step": 1000}, written opcode by opcode as torch.save does.
    data = (
        b"\x80\x02}(" + _pstr("state_dict") + b"}(" + _pstr("w") + _tensor_op("0", 3) + b"u"
        + _pstr("optimizer_states") + b"](}(" + _pstr("exp_avg") + _tensor_op("1", 3) + b"ue"
        + _pstr("epoch") + b"K\x05" + _pstr("global_step") + b"M\xe8\x03" + b"u."
    )
    p = tmp_path / "train.ckpt"
    import zipfile

    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", np.array([1, 2, 3], "<f4").tobytes())
        z.writestr("archive/data/1", np.array([4, 5, 6], "<f4").tobytes())
    with open_model(p) as m:
        assert list(m.tensors) == ["w"]
        assert np.array_equal(m.array("w"), [1, 2, 3])
        assert m.metadata["epoch"] == 5 and m.metadata["global_step"] == 1000
        assert m.metadata["tensor_root"] == "state_dict"
        assert m.metadata["tensors_outside_state_dict"] == 1
        assert [r.verdict for r in m.pickles] == ["safe"]


def test_torch_zip_tensors_map_the_file() -> None:
    with open_model(DATA / "tiny_state_dict_zip.pt") as m:
        raw = (DATA / "tiny_state_dict_zip.pt").read_bytes()
        info = m.tensors["conv.weight"]
        assert info.entry is None  # stored entry: absolute offset in the file
        expected = np.frombuffer(raw, dtype="<f4", count=info.numel, offset=info.offset)
        assert np.array_equal(m.array("conv.weight").reshape(-1), expected)


def test_torchscript_archive(testdata: Path) -> None:
    jit = testdata / "models" / "silero_vad.jit"
    with open_model(jit) as m, open_model(testdata / "models" / "silero_vad_16k.safetensors") as s:
        assert m.format == "torchscript"
        assert all(r.verdict == "safe" for r in m.pickles)
        assert len(m.pickles) > 2  # data.pkl, constants.pkl and the .debug_pkl files
        # The STFT basis is deterministic: the same in both packagings of the model.
        a = m.array("_model.stft.forward_basis_buffer")
        assert a.shape == (258, 1, 256)
        assert np.array_equal(a, s.array("stft_conv.weight"))


def test_plain_pickle_is_scanned_not_rebuilt(tmp_path: Path) -> None:
    import pickle

    p = tmp_path / "weights.pkl"
    p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    with open_model(p) as m:
        assert m.format == "pickle"
        assert m.tensors == {}
        assert [r.verdict for r in m.pickles] == ["safe"]


def test_protocol0_pickle_found_by_content(tmp_path: Path) -> None:
    # Protocol 0 has no header; a .ckpt holding one must still be scanned.
    p = tmp_path / "model.ckpt"
    p.write_bytes(b"(dp0\nS'a'\np1\nI1\ns.")
    with open_model(p) as m:
        assert m.format == "pickle" and m.pickles[0].verdict == "safe"


# -- GGUF ---------------------------------------------------------------------------------


def _write_gguf(path: Path) -> dict[str, np.ndarray]:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(2)
    w.add_name("tiny")
    w.add_context_length(128)
    w.add_token_list(["<s>", "a", "b"])
    arrays = {
        "token_embd.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "blk.0.attn_norm.weight": np.linspace(0, 1, 6).astype(np.float16).reshape(2, 3),
    }
    for k, v in arrays.items():
        w.add_tensor(k, v)
    q = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    w.add_tensor("q8", gguf.quants.quantize(q, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    arrays["q8"] = q
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return arrays


def test_gguf(tmp_path: Path) -> None:
    p = tmp_path / "tiny.gguf"
    arrays = _write_gguf(p)
    with open_model(p) as m:
        assert m.format == "gguf"
        assert m.metadata["general.architecture"] == "llama"
        assert m.metadata["general.name"] == "tiny"
        assert m.metadata["llama.context_length"] == 128
        assert m.metadata["tokenizer.ggml.tokens"] == ["<s>", "a", "b"]
        assert m.tensors["token_embd.weight"].shape == (3, 4)  # numpy order
        assert m.tensors["token_embd.weight"].dtype == "F32"
        assert np.array_equal(m.array("token_embd.weight"), arrays["token_embd.weight"])
        assert np.array_equal(m.array("blk.0.attn_norm.weight"), arrays["blk.0.attn_norm.weight"])
        q = m.tensors["q8"]
        assert q.dtype == "Q8_0" and q.shape == (2, 32)
        assert q.nbytes == 2 * 34  # two blocks of 32: fp16 scale + 32 int8
        deq = m.array("q8", convert=True)
        assert deq.shape == (2, 32)
        assert np.abs(deq - arrays["q8"]).max() < 1 / 64  # Q8_0 error bound: scale/2


def test_gguf_lying_tensor_count(tmp_path: Path) -> None:
    p = tmp_path / "lie.gguf"
    p.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0))
    with pytest.raises(DecodeError, match="more than"):
        open_model(p)


# -- folders ------------------------------------------------------------------------------


_ST_NAMES = {"float32": "F32", "float16": "F16", "int64": "I64"}


def _st(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Minimal safetensors writer for folder fixtures (no dependency on the package)."""
    header: dict[str, Any] = {}
    blobs, pos = [], 0
    for name, arr in arrays.items():
        blob = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _ST_NAMES[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [pos, pos + len(blob)]}
        blobs.append(blob)
        pos += len(blob)
    write_safetensors(path, header, b"".join(blobs))


def test_diffusers_folder(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    (root / "unet").mkdir(parents=True)
    (root / "text_encoder").mkdir()
    (root / "vae").mkdir()
    (root / "scheduler").mkdir()
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }))
    (root / "unet" / "config.json").write_text(json.dumps({"in_channels": 4, "cross_attention_dim": 768}))
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": "epsilon"}))
    w = np.ones((2, 2), np.float32)
    _st(root / "unet" / "diffusion_pytorch_model.safetensors", {"conv_in.weight": w})
    _st(root / "unet" / "diffusion_pytorch_model.fp16.safetensors",
        {"conv_in.weight": w.astype(np.float16)})
    # sharded text encoder
    _st(root / "text_encoder" / "model-00001-of-00002.safetensors", {"a": np.zeros(3, np.float32)})
    _st(root / "text_encoder" / "model-00002-of-00002.safetensors", {"b": np.full(2, 7, np.int64)})
    (root / "text_encoder" / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 28},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }))
    # a pickle component: the tiny torch checkpoint
    shutil.copy(DATA / "tiny_state_dict_zip.pt", root / "vae" / "diffusion_pytorch_model.bin")

    with open_model(root) as m:
        assert m.format == "diffusers"
        assert m.metadata["model_index"]["_class_name"] == "StableDiffusionPipeline"
        assert m.metadata["configs"]["unet"]["cross_attention_dim"] == 768
        assert m.metadata["configs"]["scheduler"]["prediction_type"] == "epsilon"
        assert "unet/conv_in.weight" in m.tensors
        assert m.tensors["unet/conv_in.weight"].dtype == "F32"  # non-variant preferred
        assert "unet[diffusion_pytorch_model.fp16.safetensors]" in m.components
        assert m.components["unet[diffusion_pytorch_model.fp16.safetensors]"].tensors[
            "conv_in.weight"].dtype == "F16"
        assert m.components["text_encoder"].format == "sharded"
        assert np.array_equal(m.array("text_encoder/b"), [7, 7])
        assert m.tensors["text_encoder/b"].source.endswith("model-00002-of-00002.safetensors")
        assert m.components["vae"].format == "torch-zip"
        assert np.array_equal(m.array("vae/steps"), [7, -3, 11])
        assert m.pickles and all(r.verdict == "safe" for r in m.pickles)
        # listed in model_index.json but absent; safety_checker [None, None] is "not used"
        assert m.metadata["missing"] == ["tokenizer"]


def test_diffusers_weight_map_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}))
    (root / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../../secret.safetensors"}})
    )
    with pytest.raises(DecodeError, match="outside its folder"):
        open_model(root)


def test_diffusers_bad_config(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    root.mkdir()
    (root / "model_index.json").write_text("{oops")
    with pytest.raises(DecodeError) as ei:
        open_model(root)
    assert "model_index.json" in str(ei.value)


def test_peft_folder(tmp_path: Path) -> None:
    root = tmp_path / "lora"
    root.mkdir()
    (root / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    a = np.arange(8, dtype=np.float32).reshape(4, 2)
    _st(root / "adapter_model.safetensors", {"base_model.model.q.lora_A.weight": a})
    with open_model(root) as m:
        assert m.format == "peft"
        assert m.metadata["adapter_config"]["r"] == 4
        assert np.array_equal(m.array("adapter/base_model.model.q.lora_A.weight"), a)


def test_peft_without_weights(tmp_path: Path) -> None:
    root = tmp_path / "lora"
    root.mkdir()
    (root / "adapter_config.json").write_text("{}")
    with pytest.raises(DecodeError, match="adapter_model"):
        open_model(root)


# -- open_model edges ---------------------------------------------------------------------


def test_open_model_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_model(tmp_path / "missing.safetensors")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UnsupportedFormat, match="neither a diffusers"):
        open_model(tmp_path / "plain")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedFormat, match="not a model"):
        open_model(text)
    big = write_safetensors(tmp_path / "b.safetensors", {"a": {"dtype": "U8", "shape": [64],
                                                              "data_offsets": [0, 64]}}, bytes(64))
    with pytest.raises(TooLarge):
        open_model(big, limits=Limits(max_file_bytes=32))
    zip_not_torch = tmp_path / "x.zip"
    import zipfile

    with zipfile.ZipFile(zip_not_torch, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(UnsupportedFormat, match="no model file and no pickle"):
        open_model(zip_not_torch)


def test_tensorinfo_is_frozen() -> None:
    t = TensorInfo("a", "F32", (2,), 0, 8, "x")
    with pytest.raises(AttributeError):
        t.name = "b"  # type: ignore[misc]
    assert t.numel == 2
