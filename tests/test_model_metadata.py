"""Structured model metadata: kohya ss_*, ModelSpec, merges, ComfyUI, GGUF lineage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from assay.models.metadata import MAX_LIST, MAX_TEXT, TOP_TAGS, parse_metadata

KOHYA = {
    "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
    "ss_sd_model_hash": "81761151",
    "ss_new_sd_model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
    "ss_training_started_at": "1700000000.25",
    "ss_training_finished_at": "1700003600",
    "ss_resolution": "(512, 512)",
    "ss_seed": "42",
    "ss_network_module": "networks.lora",
    "ss_network_dim": "32",
    "ss_network_alpha": "16.0",
    "ss_num_epochs": "10",
    "ss_max_train_steps": "1500",
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit",
    "ss_learning_rate": "0.0001",
    "ss_training_comment": "None",
    "ss_tag_frequency": json.dumps(
        {"10_person": {"smile": 4, "outdoors": 9, " hat": 1}, "5_style": {"smile": 6, "indoors": 2}}
    ),
    "ss_dataset_dirs": json.dumps({"10_person": {"n_repeats": 10, "img_count": 12}}),
    "sshs_model_hash": "ab" * 32,
}


def test_kohya_fields() -> None:
    md = parse_metadata(KOHYA)
    t = md.training
    assert t is not None
    assert t.base_model_name == "v1-5-pruned-emaonly.safetensors"
    assert t.base_model_hash == "81761151" and t.base_model_sha256 == KOHYA["ss_new_sd_model_hash"]
    assert t.started_at == datetime.fromtimestamp(1700000000.25, UTC).isoformat().replace("+00:00", "Z")
    assert t.finished_at == "2023-11-14T23:13:20Z"
    assert (t.network_dim, t.network_alpha, t.epochs, t.steps) == ("32", "16.0", "10", "1500")
    assert t.comment is None  # kohya writes the string "None" for no comment
    # counts of one tag across dataset folders add up; most frequent first, ties by name
    assert t.top_tags == [("smile", 10), ("outdoors", 9), ("indoors", 2), ("hat", 1)]
    assert t.tag_count == 4
    assert t.dataset_dirs == {"10_person": {"n_repeats": 10, "img_count": 12}}
    assert md.embedded_hashes == {"sshs_model_hash": "ab" * 32}
    assert md.warnings == []


def test_new_style_ss_datasets() -> None:
    datasets = [
        {
            "tag_frequency": {"img": {"a": 2, "b": 5}},
            "subsets": [{"image_dir": "img", "num_repeats": 3, "img_count": 7}],
        }
    ]
    t = parse_metadata({"ss_datasets": json.dumps(datasets)}).training
    assert t is not None
    assert t.top_tags == [("b", 5), ("a", 2)]
    assert t.dataset_dirs == {"img": {"num_repeats": 3, "img_count": 7}}


def test_malformed_values_are_warnings() -> None:
    md = parse_metadata(
        {"ss_tag_frequency": "{not json", "ss_training_started_at": "yesterday", "sd_merge_recipe": "[1,"}
    )
    assert md.training is not None and md.training.started_at is None
    assert any("ss_tag_frequency" in w for w in md.warnings)
    assert any("ss_training_started_at" in w for w in md.warnings)
    assert any("sd_merge_recipe" in w for w in md.warnings)


def test_modelspec_and_thumbnail_not_copied() -> None:
    md = parse_metadata(
        {
            "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
            "modelspec.title": "x",
            "modelspec.thumbnail": "data:image/png;base64," + "A" * 1000,
        }
    )
    assert md.modelspec["architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert "AAAA" not in md.modelspec["thumbnail"]


def test_merge_recipe_and_models() -> None:
    recipe = {"type": "webui", "primary_model_hash": "aa", "secondary_model_hash": "bb", "multiplier": 0.3, "interp_method": "Weighted sum"}
    models = {"aa" * 32: {"name": "A.safetensors", "legacy_hash": "11111111"}, "bb" * 32: {"name": "B", "sd_merge_recipe": {"type": "webui"}}}
    md = parse_metadata({"sd_merge_recipe": json.dumps(recipe), "sd_merge_models": json.dumps(models)})
    assert md.merge is not None
    assert md.merge.tools == ["AUTOMATIC1111 checkpoint merger"]
    assert md.merge.recipe is not None and md.merge.recipe["multiplier"] == 0.3
    assert md.merge.models[0] == {"sha256": "aa" * 32, "name": "A.safetensors", "legacy_hash": "11111111"}
    assert md.merge.models[1]["merged"] is True
    assert parse_metadata({"format": "pt", "merged_by": "SuperMerger 1.2"}).merge.tools == ["supermerger"]  # type: ignore[union-attr]


def test_comfyui_prompt_and_workflow() -> None:
    prompt = {"3": {"class_type": "KSampler", "inputs": {}}, "4": {"class_type": "CheckpointLoaderSimple"}}
    workflow = {"nodes": [{"id": 1, "type": "CheckpointSave"}]}
    md = parse_metadata({"prompt": json.dumps(prompt), "workflow": json.dumps(workflow)})
    assert md.comfyui_prompt and md.comfyui_workflow
    assert md.comfyui_nodes == ["CheckpointLoaderSimple", "CheckpointSave", "KSampler"]
    assert md.merge is not None and any("ComfyUI" in t for t in md.merge.tools)


def test_gguf_general_and_base_models() -> None:
    meta = {
        "general.architecture": "llama",
        "general.name": "Tiny",
        "general.base_model.count": 2,
        "general.base_model.0.name": "Llama 3.1 8B",
        "general.base_model.0.organization": "Meta Llama",
        "general.base_model.0.repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B",
        "general.base_model.1.name": "Other",
        "general.tags": ["a", "b"],
        "tokenizer.ggml.tokens": ["x"] * 1000,
    }
    md = parse_metadata(meta, "gguf")
    assert md.gguf is not None
    assert md.gguf.general["name"] == "Tiny" and md.gguf.general["tags"] == ["a", "b"]
    assert md.gguf.base_models == [
        {"name": "Llama 3.1 8B", "organization": "Meta Llama", "repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B"},
        {"name": "Other"},
    ]
    assert "tokenizer.ggml.tokens" in md.other_keys


def test_text_is_kept_verbatim_but_bounded() -> None:
    evil = "[bold red]x[/] \x1b[2J\u202e" + "y" * 10_000
    md = parse_metadata({"ss_training_comment": evil})
    assert md.training is not None and md.training.comment is not None
    assert md.training.comment.startswith("[bold red]x[/] \x1b[2J\u202e")
    assert len(md.training.comment) == 4096
    assert any("cut" in w for w in md.warnings)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.one_of(
            st.sampled_from(
                ["ss_tag_frequency", "ss_datasets", "ss_dataset_dirs", "sd_merge_recipe", "sd_merge_models", "prompt", "workflow", "ss_training_started_at", "general.base_model.count", "modelspec.title"]
            ),
            st.text(max_size=20),
        ),
        st.one_of(st.text(max_size=200), st.integers(), st.from_regex(r"\{.*\}", fullmatch=True), st.just('{"a": {"b": 1}}'), st.just('[{"subsets": [1, {}]}]'),
                  # past the bounds: long texts, and JSON objects and lists with many members
                  st.builds(lambda c, n: c * n, st.characters(), st.integers(4000, 9000)),
                  st.builds(lambda n: json.dumps({f"d{i}": {f"t{j}": j for j in range(n)} for i in range(n)}), st.integers(90, 130)),
                  st.builds(lambda n: json.dumps([{"image_dir": f"d{i}", "subsets": [{"image_dir": f"s{i}"}]} for i in range(n)]), st.integers(90, 130))),
        max_size=12,
    )
)
def test_fuzz_never_raises(meta: dict[str, object]) -> None:
    md = parse_metadata(meta)
    dumped = json.loads(md.model_dump_json())
    assert parse_metadata(dict(meta)) == md  # the same metadata, the same reading

    # Bounded whatever comes in: no text longer than MAX_TEXT, no list longer than MAX_LIST.
    def walk(v: object, where: str) -> None:
        if isinstance(v, str):
            assert len(v) <= MAX_TEXT, where
        elif isinstance(v, list):
            assert len(v) <= MAX_LIST, where
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, dict):
            assert len(v) <= MAX_LIST, where
            for k, x in v.items():
                walk(x, f"{where}.{k}")

    walk(dumped, "metadata")
    # Only keys that are in the file are named, in order; what was cut is said in a warning.
    assert md.other_keys == sorted(md.other_keys) and set(md.other_keys) <= set(meta)
    if md.training is not None:
        assert len(md.training.top_tags) <= min(TOP_TAGS, md.training.tag_count)
        counts = [(-n, t) for t, n in md.training.top_tags]
        assert counts == sorted(counts)
        for stamp in (md.training.started_at, md.training.finished_at):
            if stamp is not None:
                datetime.fromisoformat(stamp)


def test_lone_surrogates_from_a_json_header_do_not_break_the_report() -> None:
    # json.loads turns the escape "\ud800" in a safetensors header into a lone surrogate,
    # which UTF-8 cannot encode: writing the report used to fail with a traceback.
    meta = json.loads('{"ss_training_comment": "x\\ud800y", "modelspec.title": "\\udc80"}')
    md = parse_metadata(meta)
    assert md.training is not None and md.training.comment == "x\ufffdy"
    assert md.modelspec["title"] == "\ufffd"
    md.model_dump_json().encode("utf-8")
