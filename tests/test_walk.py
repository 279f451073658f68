"""Walking inputs: symlink loops, special files, model folders, missing paths."""

from __future__ import annotations

import os
from pathlib import Path

from assay.scan.walk import walk


def _paths(items) -> list[str]:
    return [str(i.path) for i in items if i.problem is None]


def test_walk_finds_files_in_order_and_once(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c.txt").write_text("c")
    items = list(walk([tmp_path, tmp_path / "a.txt"]))  # a.txt given twice
    assert _paths(items) == [str(tmp_path / "a.txt"), str(tmp_path / "b" / "c.txt")]


def test_symlink_loop_terminates_and_visits_each_dir_once(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("x")
    os.symlink(tmp_path, d / "loop")  # d/loop -> tmp_path -> d -> ...
    os.symlink(d, d / "self")
    items = list(walk([tmp_path]))
    assert _paths(items) == [str(d / "x.txt")]


def test_broken_symlink_and_missing_path_are_reported(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    items = list(walk([tmp_path, tmp_path / "missing.jpg"]))
    problems = {str(i.path): i.problem for i in items if i.problem}
    assert str(tmp_path / "dangling") in problems
    assert "cannot access" in problems[str(tmp_path / "missing.jpg")]


def test_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "f.txt").write_text("f")
    assert _paths(walk([tmp_path])) == [str(tmp_path / "f.txt")]
    items = list(walk([tmp_path / "pipe"]))
    assert items[0].problem == "not a regular file or folder"


def test_diffusers_folder_is_one_subject(tmp_path: Path) -> None:
    m = tmp_path / "model"
    (m / "unet").mkdir(parents=True)
    (m / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (m / "unet" / "config.json").write_text("{}")
    (tmp_path / "other.txt").write_text("o")
    assert sorted(_paths(walk([tmp_path]))) == [str(m), str(tmp_path / "other.txt")]
