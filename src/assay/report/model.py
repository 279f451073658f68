"""Model section of a file record (model-file forensics).

Every field is evidence read or computed from the file; text taken from the file
(metadata, names) is kept verbatim as data and escaped only when rendered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["certain", "likely", "unknown"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraInfo(_Part):
    """An adapter file: what it patches and how big its updates are."""

    format: str  # "kohya", "peft", "diffusers-legacy", "loha", "lokr", "mixed"
    dora: bool = False
    ranks: dict[int, int] = Field(default_factory=dict)  # rank -> number of modules
    alphas: dict[str, int] = Field(default_factory=dict)  # alpha (as text) -> modules
    modules: int = 0
    targets: dict[str, int] = Field(default_factory=dict)  # component -> modules
    target_kinds: dict[str, int] = Field(default_factory=dict)  # e.g. attn2.to_k -> modules
    base_family: str = "unknown"
    base_confidence: Confidence = "unknown"


class LlmInfo(_Part):
    architecture: str  # "llama", "qwen2", "gemma", "bert", or GGUF general.architecture
    hidden_size: int | None = None
    layers: int | None = None
    vocab_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    context_length: int | None = None


class ArchReport(_Part):
    """What the weights say the model is, with the facts that say so."""

    family: str = "unknown"  # e.g. "stable-diffusion-1", "flux-1", "lora", "llm"
    variant: str | None = None  # e.g. "inpainting", "refiner", "dev", "schnell"
    kind: str = "unknown"  # "checkpoint", "diffusion-model", "lora", "vae", "text-encoder", "llm"
    confidence: Confidence = "unknown"
    facts: int = 0  # independent shape/key facts that agree on the family
    layout: str | None = None  # "ldm", "diffusers", "comfy", "bfl", "gguf", "hf"
    components: list[str] = Field(default_factory=list)
    ema: bool = False
    prediction: str = "not detectable from weights"
    context_dim: int | None = None
    in_channels: int | None = None
    dtypes: dict[str, int] = Field(default_factory=dict)  # dtype -> tensors
    params_by_dtype: dict[str, int] = Field(default_factory=dict)
    params: dict[str, int] = Field(default_factory=dict)  # component -> parameters
    total_params: int = 0
    tensors: int = 0
    lora: LoraInfo | None = None
    llm: LlmInfo | None = None
    reasons: list[str] = Field(default_factory=list)


class ModelHashes(_Part):
    """Community and cryptographic hashes, all computed from the file's bytes."""

    size: int
    sha256: str
    autov1: str  # sha256 of 64 KiB at offset 1 MiB, first 8 hex (A1111 "old" model hash)
    autov2: str  # sha256 of the whole file, first 10 hex
    autov3: str | None = None  # sha256 of the safetensors data section, first 12 hex
    data_sha256: str | None = None  # the full data-section sha256 (kohya sshs_model_hash)
    data_offset: int | None = None
    blake3: str
    crc32: str  # zlib.crc32 as big-endian hex (how zlib and most tools print it)
    crc32_civitai: str  # the same 4 bytes reversed (little-endian), as Civitai shows it
    md5: str


class HashCheck(_Part):
    """An embedded hash compared with the value recomputed from the file."""

    key: str
    embedded: str
    recomputed: str | None
    status: Literal["match", "mismatch", "not-comparable"]
    covers: str  # what the embedded value is supposed to hash


class TrainingInfo(_Part):
    """kohya sd-scripts training metadata (``ss_*``)."""

    base_model_name: str | None = None
    base_model_hash: str | None = None  # ss_sd_model_hash: AutoV1 of the base
    base_model_sha256: str | None = None  # ss_new_sd_model_hash
    base_model_version: str | None = None
    output_name: str | None = None
    comment: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    resolution: str | None = None
    seed: str | None = None
    network_module: str | None = None
    network_dim: str | None = None
    network_alpha: str | None = None
    network_args: str | None = None
    epochs: str | None = None
    steps: str | None = None
    optimizer: str | None = None
    learning_rate: str | None = None
    unet_lr: str | None = None
    text_encoder_lr: str | None = None
    num_train_images: str | None = None
    dataset_dirs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tag_count: int = 0  # distinct training tags
    top_tags: list[tuple[str, int]] = Field(default_factory=list)  # most frequent first


class MergeInfo(_Part):
    tools: list[str] = Field(default_factory=list)
    recipe: dict[str, Any] | None = None
    models: list[dict[str, Any]] = Field(default_factory=list)


class GgufInfo(_Part):
    general: dict[str, Any] = Field(default_factory=dict)
    base_models: list[dict[str, Any]] = Field(default_factory=list)


class ModelMetadata(_Part):
    training: TrainingInfo | None = None
    modelspec: dict[str, str] = Field(default_factory=dict)
    merge: MergeInfo | None = None
    comfyui_prompt: bool = False
    comfyui_workflow: bool = False
    comfyui_nodes: list[str] = Field(default_factory=list)  # node class types, sorted
    gguf: GgufInfo | None = None
    embedded_hashes: dict[str, str] = Field(default_factory=dict)
    other_keys: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # lineage against fingerprint banks (same weights, derived, merge, LoRA, low-rank);
    # see assay.models.lineage.LineageReport.to_dict
    lineage: dict[str, Any] | None = None
    lineage_explanations: list[str] = Field(default_factory=list)


class SafetyFinding(_Part):
    """One pickle's safety verdict as the pickle scanner reported it."""

    source: str  # e.g. "archive/data.pkl"
    verdict: str  # the scanner's verdict ("safe", "suspicious", "dangerous", ...)
    globals: list[str] = Field(default_factory=list)
    offsets: list[int] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class SafetyInfo(_Part):
    verdict: str  # the worst verdict over all pickles; "no-code" for pure tensor formats
    findings: list[SafetyFinding] = Field(default_factory=list)


class ModelReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: str
    details: dict[str, Any] = Field(default_factory=dict)
    size: int | None = None
    tensor_count: int | None = None
    data_offset: int | None = None
    safety: SafetyInfo | None = None
    arch: ArchReport | None = None
    hashes: ModelHashes | None = None
    hash_checks: list[HashCheck] = Field(default_factory=list)
    metadata: ModelMetadata | None = None
    warnings: list[str] = Field(default_factory=list)
