"""The `assay` command as a person runs it: a real process in a fresh home, files with
awkward names, outputs in awkward places, an interrupted scan. What it prints must be
readable and safe on a terminal, its JSON valid UTF-8, and nothing the user had lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import assay as assay_pkg
from assay.demo import pattern

BAD_NAME = os.fsdecode(b"bad\xffname.png")  # the byte FF: not UTF-8 (a Latin-1 name, say)


def assay(*args: str, home: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
          timeout: float = 300, prefix: list[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """`assay ARGS` in a new process with its own home (its own default store), stdout
    and stderr as bytes: whether they are valid UTF-8 is part of what is checked."""
    code = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
    e = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    e |= {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"), "COLUMNS": "80",
          "PYTHONPATH": str(Path(assay_pkg.__file__).parents[1])}  # this tree, whatever the cwd
    # a terminal's usual setting: text that UTF-8 cannot encode is an error, not raw bytes
    e |= {"PYTHONIOENCODING": "utf-8:strict"} | (env or {})
    return subprocess.run([*(prefix or []), sys.executable, "-c", code, *args], capture_output=True,
                          cwd=cwd or home, env=e, timeout=timeout)


def as_a_user() -> list[str]:
    """A command prefix under which file permissions hold: none for a user; for root, root
    without the capabilities that pass them by (setpriv), else the test is skipped."""
    import shutil

    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root, and no setpriv to drop the capabilities that pass file permissions by")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


def no_traceback(res: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in res.stdout + res.stderr, res.stderr.decode(errors="replace")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_a_name_that_is_not_utf8_is_scanned_and_its_json_is_valid(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / BAD_NAME)
    pattern("blobs", seed=2).save(folder / "plain.png")
    res = assay("scan", "case", "-o", "r.jsonl", "--workers", "1", home=home)
    no_traceback(res)
    assert res.returncode == 0, res.stderr
    assert not (home / "r.jsonl.partial").exists()
    paths = []
    for raw in (home / "r.jsonl").read_bytes().splitlines():
        rec = json.loads(raw.decode("utf-8"))  # valid UTF-8, valid JSON
        if rec["schema"] == "assay.file/1":
            paths.append(rec["path"])
    # the name comes back byte for byte: the examiner can find the very file
    assert sorted(os.fsencode(p) for p in paths) == [b"case/bad\xffname.png", b"case/plain.png"]
    assert all((home / p).exists() for p in paths)
    # the one-file commands' --json too, and the report read back by `assay report`
    for cmd in (["hash"], ["provenance"], ["match", "--image"]):
        res = assay(*cmd, str(folder / BAD_NAME), "--json", home=home)
        no_traceback(res)
        assert res.returncode == 0, (cmd, res.stderr)
        for line in res.stdout.splitlines():
            json.loads(line.decode("utf-8"))
    for fmt, out in (("html", "case.html"), ("csv", "csv"), ("case", "case.jsonld")):
        res = assay("report", "r.jsonl", "--format", fmt, "-o", out, home=home)
        no_traceback(res)
        assert res.returncode == 0, (fmt, res.stderr)
    json.loads((home / "case.jsonld").read_bytes().decode("utf-8"))
    assert "bad\\udcffname.png" in (home / "csv" / "inventory.csv").read_text(encoding="utf-8-sig")


def test_an_archive_member_name_that_is_not_utf8(home: Path) -> None:
    import tarfile

    src = home / "src"
    src.mkdir()
    pattern("rings", seed=1).save(src / BAD_NAME)
    folder = home / "case"
    folder.mkdir()
    with tarfile.open(folder / "a.tar", "w", encoding="utf-8", errors="surrogateescape") as tf:
        tf.add(src / BAD_NAME, arcname=BAD_NAME)
        tf.add(src / BAD_NAME, arcname="second.png")
    pattern("blobs", seed=2).save(folder / "plain.png")
    res = assay("scan", "case", "-o", "r.jsonl", "--workers", "2", home=home)  # members spooled by a worker
    no_traceback(res)
    assert res.returncode == 0, res.stderr
    paths = [json.loads(raw.decode("utf-8")).get("path") for raw in (home / "r.jsonl").read_bytes().splitlines()]
    assert os.fsdecode(b"case/a.tar!/bad\xffname.png") in paths


def test_an_output_that_is_a_folder_or_a_pipe_is_refused_before_any_work(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "a.png")
    (home / "out").mkdir()
    (home / "out" / "keep.txt").write_text("mine")
    os.mkfifo(home / "pipe")
    res = assay("scan", "case", "-o", "r.jsonl", "--workers", "1", home=home)
    assert res.returncode == 0, res.stderr
    for args in (["scan", "case", "--workers", "1"], ["report", "r.jsonl"], ["bank", "export", "b"]):
        for target in ("out", "pipe"):
            for overwrite in ([], ["--overwrite"]):
                if args[0] == "bank":
                    assay("bank", "create", "b", home=home)
                res = assay(*args, "-o", target, *overwrite, home=home)
                no_traceback(res)
                err = res.stderr.decode()
                assert res.returncode == 1 and f"{target}: is " in err and "nothing was written" in err, \
                    (args, target, overwrite, err)
                assert "already exists" not in err  # --overwrite would not help
    # what was there is still there, as it was
    assert (home / "out").is_dir() and (home / "out" / "keep.txt").read_text() == "mine"
    assert (home / "pipe").is_fifo()
    assert not list(home.glob("*.partial")) and not (home / "out.sha256").exists()


def test_ctrl_c_in_a_scan_keeps_the_records_and_says_where(home: Path) -> None:
    import signal
    import time

    folder = home / "case"
    folder.mkdir()
    img = folder / "0.png"
    pattern("rings", seed=1).resize((96, 96)).save(img)
    data = img.read_bytes()
    for i in range(1, 2000):  # enough work to be stopped in the middle
        (folder / f"{i}.png").write_bytes(data)
    code = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env |= {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"),
            "PYTHONPATH": str(Path(assay_pkg.__file__).parents[1])}
    # its own process group, as a terminal's foreground job: Ctrl-C reaches the workers too
    proc = subprocess.Popen([sys.executable, "-c", code, "scan", "case", "-o", "r.jsonl", "--workers", "2"],
                            cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    partial = home / "r.jsonl.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert not (home / "r.jsonl").exists() and not (home / "r.jsonl.sha256").exists()
    lines = partial.read_bytes().splitlines()
    assert f"interrupted: the {len(lines)} report lines written so far are kept in r.jsonl.partial" in text
    recs = [json.loads(x) for x in lines]  # every line whole
    assert recs[0]["schema"] == "assay.scan-header/1" and {r["schema"] for r in recs[1:]} == {"assay.file/1"}


def test_file_names_cannot_drive_the_terminal_or_break_lines(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "known.png")
    names = {"colour\x1b[31mRED\x1b[0m.png": "colour\\x1b[31mRED\\x1b[0m.png",
             "two\nlines.png": "two\\x0alines.png",
             "x\u202egnp.exe": "x\\u202egnp.exe",  # shown as 'xexe.png' if the override acted
             BAD_NAME: "bad\\udcffname.png"}
    for level, name in enumerate(names):  # the same picture, other bytes: a review record each
        pattern("rings", seed=1).save(folder / name, "PNG", compress_level=level + 1)
    assert assay("bank", "create", "k", home=home).returncode == 0
    assert assay("bank", "add", "k", "--content-id", "c1", "--image", "case/known.png", home=home).returncode == 0

    def shown(res: subprocess.CompletedProcess[bytes]) -> str:
        no_traceback(res)
        text = (res.stdout + res.stderr).decode("utf-8")
        assert "\x1b" not in text and "\u202e" not in text, text
        return text

    text = shown(assay("scan", "case", "-o", "r.jsonl", "--workers", "1", home=home))
    for escaped in names.values():
        assert f"  match: case/{escaped}\n" in text, (escaped, text)
    files = [str(folder / n) for n in names]
    text = shown(assay("provenance", *files, home=home))
    text += shown(assay("model", *files, home=home))
    for escaped in names.values():
        assert f"\n{home}/case/{escaped}\n" in "\n" + text  # provenance: the file's own line
        assert f"error: {home}/case/{escaped}: not a model file" in text
    res = assay("review", "r.jsonl", "--json", home=home)
    assert res.returncode == 0, res.stderr
    items = json.loads(res.stdout)["items"]
    rid = next(i["record_id"] for i in items if i["path"] == "case/two\nlines.png")
    text = shown(assay("review", "set", rid, "--decision", "confirmed", home=home))
    text += shown(assay("review", "show", rid, home=home))
    assert "matched case/two\\x0alines.png\n" in text and "  file case/two\\x0alines.png " in text


def test_a_match_on_a_name_that_is_not_utf8_can_be_reviewed(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "known.png")
    pattern("rings", seed=1).save(folder / BAD_NAME, "PNG", compress_level=1)  # other bytes: its own record
    assert assay("bank", "create", "k", home=home).returncode == 0
    assert assay("bank", "add", "k", "--content-id", "c1", "--image", "case/known.png", home=home).returncode == 0
    assert assay("scan", "case", "-o", "r.jsonl", "--workers", "1", "--json", home=home).returncode == 0
    res = assay("review", "r.jsonl", "--json", home=home)
    no_traceback(res)
    assert res.returncode == 0, res.stderr
    rid = next(i["record_id"] for i in json.loads(res.stdout)["items"] if i["path"] == f"case/{BAD_NAME}")
    res = assay("review", "set", rid, "--decision", "false-positive", "--json", home=home)
    no_traceback(res)
    assert res.returncode == 0, res.stderr
    res = assay("review", "show", rid, "--json", home=home)
    shown = json.loads(res.stdout)
    assert shown["decision"] == "false-positive" and shown["path"] == "case/bad\\udcffname.png"


def test_review_lists_whole_record_ids_on_an_80_column_terminal(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "known.png")
    pattern("rings", seed=1).save(folder / "a-copy-with-a-rather-long-name-as-cameras-write.jpg", quality=80)
    assert assay("bank", "create", "k", home=home).returncode == 0
    assert assay("bank", "add", "k", "--content-id", "c1", "--image", "case/known.png", home=home).returncode == 0
    assert assay("scan", "case", "-o", "r.jsonl", "--workers", "1", "--json", home=home).returncode == 0
    ids = [i["record_id"] for i in json.loads(assay("review", "r.jsonl", "--json", home=home).stdout)["items"]]
    res = assay("review", "r.jsonl", home=home)  # COLUMNS=80
    no_traceback(res)
    text = res.stdout.decode()
    assert len(ids) >= 3
    for rid in ids:  # what `assay review set ID` takes, copied from one line
        assert rid in text, (rid, text)
    assert "not reviewed" in text


def test_a_text_index_named_like_an_existing_file(home: Path) -> None:
    works = home / "works"
    works.mkdir()
    (works / "tale.txt").write_text("Once upon a time a lighthouse keeper counted the ships that passed her rock.\n")
    for index in ("works/tale.txt", "works/tale.txt/idx"):  # the file itself; a folder under it
        res = assay("text", "index", "works", "--index", index, home=home)
        no_traceback(res)
        assert res.returncode == 1 and "error: works/tale.txt" in res.stderr.decode(), res.stderr
    assert (works / "tale.txt").read_text().startswith("Once upon a time")


def test_serve_on_a_port_in_use_says_so_and_exits(home: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        res = assay("serve", "--port", str(port), home=home)
    no_traceback(res)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "listening on" not in err  # never claimed
    for bad in ("-1", "70000"):
        res = assay("serve", "--port", bad, home=home)
        no_traceback(res)
        assert res.returncode == 2 and "--port" in res.stderr.decode()


def test_demo_where_it_cannot_write(home: Path) -> None:
    (home / "taken").write_text("mine")
    res = assay("demo", "--dir", "taken", home=home)
    no_traceback(res)
    assert res.returncode == 1 and "error: taken: is a file" in res.stderr.decode()
    assert (home / "taken").read_text() == "mine"
    res = assay("demo", "--dir", "taken/demo", home=home)  # a folder that cannot be made
    no_traceback(res)
    assert res.returncode == 1 and "error: taken" in res.stderr.decode() and "cannot write" in res.stderr.decode()


def test_a_pipe_or_a_device_given_as_the_file(home: Path) -> None:
    os.mkfifo(home / "pipe")  # no writer: opening it would wait for ever
    assert assay("bank", "create", "k", home=home).returncode == 0
    works = home / "works"
    works.mkdir()
    (works / "tale.txt").write_text("Once upon a time a lighthouse keeper counted the ships that passed her rock.\n")
    assert assay("text", "index", "works", "--index", "idx", home=home).returncode == 0
    for cmd in (["hash"], ["provenance"], ["model"], ["match", "--image"], ["text", "check", "--index", "idx"],
                ["bank", "import", "k"]):
        for target in ("pipe", "/dev/zero"):
            res = assay(*cmd, target, home=home, timeout=60)
            no_traceback(res)
            text = (res.stdout + res.stderr).decode()
            assert res.returncode == 1, (cmd, target, text)
            assert "not a regular file but a " in text and target in text, (cmd, target, text)
    assert (home / "pipe").is_fifo()


def test_scan_to_stdout_keeps_stdout_json_lines(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "a.png")
    (folder / "notes.txt").write_text("hello")
    res = assay("scan", "case", "-o", "-", "--workers", "1", home=home)
    no_traceback(res)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    recs = [json.loads(x) for x in lines]  # the report, and nothing else
    assert recs[0]["schema"] == "assay.scan-header/1" and recs[-1]["schema"] == "assay.scan-summary/1"
    assert "assay scan" in res.stderr.decode() and "2 files" in res.stderr.decode()  # the summary, readable


def test_a_mistyped_input_among_others_is_named_with_the_reason(home: Path) -> None:
    pattern("rings", seed=1).save(home / "a.png")
    res = assay("scan", "a.png", "typo.png", "-o", "r.jsonl", "--workers", "1", home=home)
    no_traceback(res)
    assert res.returncode == 0, res.stderr  # the other input was scanned
    assert "error: typo.png: cannot access: No such file or directory" in res.stderr.decode()
    res = assay("scan", "typo.png", "-o", "r2.jsonl", home=home)
    assert res.returncode == 1
    assert "error: typo.png: cannot access: No such file or directory" in res.stderr.decode()


def test_negative_counts_are_refused(home: Path) -> None:
    pattern("rings", seed=1).save(home / "a.png")
    for args, option in ((["scan", "a.png", "--workers", "-3", "-o", "r.jsonl"], "--workers"),
                         (["serve", "--max-upload-mb", "-1", "--port", "1"], "--max-upload-mb")):
        res = assay(*args, home=home, timeout=60)
        no_traceback(res)
        assert res.returncode == 2 and option in res.stderr.decode(), (args, res.stderr)
    assert not (home / "r.jsonl").exists()


def test_a_trust_anchor_bundle_that_cannot_be_read_stops_before_any_work(home: Path) -> None:
    pattern("rings", seed=1).save(home / "a.png")
    for args in (["provenance", "a.png", "--trust-anchors", "anchors.pem"],
                 ["scan", "a.png", "--trust-anchors", "anchors.pem", "-o", "r.jsonl"]):
        res = assay(*args, home=home)
        no_traceback(res)
        assert res.returncode == 1, (args, res.stderr)
        assert "error: anchors.pem: cannot read trust anchors: No such file or directory" in res.stderr.decode()
    res = assay("scan", "a.png", "-o", "r.jsonl", home=home, env={"ASSAY_C2PA_TRUST_ANCHORS": "anchors.pem"})
    assert res.returncode == 1 and "anchors.pem: cannot read trust anchors" in res.stderr.decode()
    assert not (home / "r.jsonl").exists()


def test_camera_enroll_says_which_photos_could_not_be_read_and_why(home: Path) -> None:
    os.mkfifo(home / "pipe")
    (home / "empty.jpg").write_bytes(b"")
    res = assay("camera", "enroll", "cam", "missing.jpg", "pipe", "empty.jpg", "--min-images", "1", home=home,
                timeout=60)
    no_traceback(res)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    for why in ("missing.jpg: No such file or directory", "pipe: not a regular file", "empty.jpg: "):
        assert why in err, (why, err)


def test_a_pipe_given_to_bank_add_add_model_match_video_and_camera_match(home: Path) -> None:
    os.mkfifo(home / "pipe")
    pattern("rings", seed=1).save(home / "a.png")
    assert assay("bank", "create", "k", home=home).returncode == 0
    assert assay("camera", "enroll", "cam", "a.png", "--min-images", "1", home=home).returncode == 0
    for cmd in (["bank", "add", "k", "--content-id", "x", "--image"], ["bank", "add", "k", "--content-id", "v",
                "--video"], ["bank", "add-model", "k"], ["match", "--video"], ["camera", "match"]):
        res = assay(*cmd, "pipe", home=home, timeout=60)
        no_traceback(res)
        assert res.returncode == 1 and "pipe: not a regular file but a pipe (FIFO)" in res.stderr.decode(), cmd


@pytest.mark.parametrize("group", [[], ["bank"], ["text"], ["review"]])
def test_command_lists_show_each_summary_unbroken(home: Path, group: list[str]) -> None:
    res = assay(*group, "--help", home=home, env={"COLUMNS": "400"})  # room for every summary on its line
    assert res.returncode == 0
    lines = res.stdout.decode().splitlines()
    start = next(i for i, ln in enumerate(lines) if "Commands" in ln)
    rows = lines[start + 1:next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))]
    assert len(rows) >= 3
    for row in rows:  # a line that starts with spaces continues the one above: a sentence cut in two
        assert row.startswith("│ ") and not row[2].isspace(), (group, row)


def test_demo_never_replaces_a_report_it_did_not_write(home: Path) -> None:
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "a.png")
    assert assay("scan", "case", "-o", "report.jsonl", "--workers", "1", home=home).returncode == 0
    mine = (home / "report.jsonl").read_bytes(), (home / "report.jsonl.sha256").read_bytes()
    res = assay("demo", "--dir", ".", home=home)  # README's scan example, then the demo here
    no_traceback(res)
    assert res.returncode == 1 and "report.jsonl: a report that the demo did not write" in res.stderr.decode()
    assert ((home / "report.jsonl").read_bytes(), (home / "report.jsonl.sha256").read_bytes()) == mine
    assert not (home / "images").exists()  # nothing was written
    for _ in range(2):  # the demo's own report is the demo's to renew
        res = assay("demo", "--dir", "demo-data", home=home)
        assert res.returncode == 0, res.stderr


def test_a_report_on_a_read_only_share_is_rendered_elsewhere_not_a_traceback(home: Path) -> None:
    user = as_a_user()
    folder = home / "case"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "a.png")
    share = home / "share"
    share.mkdir()
    assert assay("scan", "case", "-o", "share/r.jsonl", "--workers", "1", home=home).returncode == 0
    assert assay("bank", "create", "k", home=home).returncode == 0
    share.chmod(0o555)
    try:
        for args in (["report", "share/r.jsonl"], ["report", "share/r.jsonl", "--format", "csv"],
                     ["report", "share/r.jsonl", "--format", "case"], ["bank", "export", "k", "-o", "share/k.jsonl"]):
            res = assay(*args, home=home, prefix=user)
            no_traceback(res)
            err = res.stderr.decode()
            assert res.returncode == 1 and "error: share/" in err and "Permission denied" in err, (args, err)
    finally:
        share.chmod(0o755)
    assert sorted(p.name for p in share.iterdir()) == ["r.jsonl", "r.jsonl.sha256"]
