"""`classify --engine ray` on a local 2-CPU Ray cluster gives the local engine's files byte for
byte (tfidf and a tiny fine-tuned model), reads folders of shards, survives SIGKILL and a
rerun, and fails in one line when Ray is missing or the cluster cannot be reached."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dispute_classifier.batch.driver import classify as classify_file
from dispute_classifier.batch.job import ClassifyConfig
from dispute_classifier.core.errors import UserError
from tests.conftest import REPO, write_task
from tests.e2e.test_classify_resume import ROWS, make_input, outputs, state_rows


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray engine needs the scale extra: pip install -e '.[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def run_both(tmp_path: Path, src: Path, out_name: str, **kw) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    """The same job through both engines, each into its own folder; returns both folders'
    files and the Ray summary."""
    results = []
    text = ""
    for engine in ("local", "ray"):
        folder = tmp_path / engine
        folder.mkdir()
        extra = {"workers": 2} if engine == "ray" else {}
        cfg = ClassifyConfig(input=str(src), output=str(folder / out_name), quiet=True, engine=engine, **extra, **kw)  # type: ignore[arg-type]
        buf = io.StringIO()
        summary = classify_file(cfg, out=buf)
        results.append(outputs(folder))
        if engine == "ray":
            from dispute_classifier.batch.job import format_summary

            text = buf.getvalue() + format_summary(summary)
    return results[0], results[1], text


@pytest.mark.parametrize("src_name, out_name", [("in.csv", "out.csv"), ("in.jsonl", "out.parquet")])
def test_tfidf_files_are_byte_identical_to_local(ray_cluster, toy_task, tmp_path, src_name, out_name):
    if out_name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    src = tmp_path / src_name
    make_input(src)
    local, ray_files, summary = run_both(
        tmp_path,
        src,
        out_name,
        model="tfidf",
        task=str(toy_task),
        text_column="message",
        id_column="ticket",
        chunk_size=300,
        min_confidence=0.9,
        max_chars=300,
    )
    assert set(local) == {out_name, out_name.replace(".", ".errors."), out_name.replace(".", ".review.")}
    assert ray_files == local
    assert "complete" in summary and "duplicate_id" in summary and "on 2 Ray worker(s)" in summary


@pytest.mark.slow
def test_finetuned_model_files_are_byte_identical_to_local(ray_cluster, tmp_path, monkeypatch, tiny_llama):
    """A tiny LLaMA with a classification head, trained for a few steps, loaded once per actor."""
    import torch

    from finetune.recipe import load_recipe
    from finetune.train import train
    from tests.integration.test_finetune_tiny import ROWS as TRAIN_ROWS

    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    task = write_task(
        tmp_path, train=TRAIN_ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    recipe = load_recipe(
        "smollm2-135m-lora-cpu",
        [
            f"task={task}",
            f"model={tiny_llama}",
            "head=classification",
            "name=tiny-ray",
            "train.max_steps=2",
            "train.batch_size=4",
            "train.warmup_steps=0",
            "eval_limit=3",
        ],
    )
    train(recipe, runs_dir=str(tmp_path / "runs"))
    src = tmp_path / "in.jsonl"
    words = ["refund please", "why this fee", "not my payment", "hello there"]
    src.write_text(
        "".join(json.dumps({"ticket": f"T{i}", "message": f"{words[i % 4]} {i}"}) + "\n" for i in range(48))
        + '{"ticket": "T1", "message": "dup"}\n'
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each one-CPU Ray actor, so the float sums run in the same order
    try:
        local, ray_files, summary = run_both(
            tmp_path,
            src,
            "out.csv",
            model="tiny-ray:v1",
            task=str(task),
            text_column="message",
            id_column="ticket",
            chunk_size=16,
        )
    finally:
        torch.set_num_threads(threads)
    assert ray_files == local
    assert local["out.csv"].count(b"tiny-ray") == 48 and b"duplicate_id" in local["out.errors.csv"]


def test_folder_of_shards_matches_the_whole_file(ray_cluster, toy_task, tmp_path):
    """Three shards give the output of the concatenated file; error rows name their shard."""
    whole = tmp_path / "whole.csv"
    make_input(whole)
    lines = whole.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    shards = tmp_path / "shards"
    shards.mkdir()
    third = len(body) // 3 + 1
    for n in range(3):
        (shards / f"part-{n}.csv").write_bytes(header + b"".join(body[n * third : (n + 1) * third]))
    common = dict(model="tfidf", task=str(toy_task), text_column="message", id_column="ticket", chunk_size=250, max_chars=300, quiet=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    classify_file(ClassifyConfig(input=str(whole), output=str(tmp_path / "a" / "out.csv"), **common), out=io.StringIO())  # type: ignore[arg-type]
    classify_file(
        ClassifyConfig(input=str(shards), output=str(tmp_path / "b" / "out.csv"), engine="ray", workers=2, **common), out=io.StringIO()
    )  # type: ignore[arg-type]
    assert (tmp_path / "b" / "out.csv").read_bytes() == (tmp_path / "a" / "out.csv").read_bytes()
    import csv

    def kinds(path: Path) -> list[tuple[str, str]]:
        with open(path, newline="", encoding="utf-8") as f:
            return [(r["id"], r["kind"]) for r in csv.DictReader(f)]

    assert kinds(tmp_path / "b" / "out.errors.csv") == kinds(tmp_path / "a" / "out.errors.csv")
    assert "part-1.csv: duplicate id" in (tmp_path / "b" / "out.errors.csv").read_text(encoding="utf-8")
    with pytest.raises(UserError, match="inside the input"):
        classify_file(ClassifyConfig(input=str(shards), output=str(shards / "out.csv"), engine="ray", **common), out=io.StringIO())  # type: ignore[arg-type]


def _command(task: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dispute_classifier.commands.cli",
        "classify",
        str(src),
        "--task",
        str(task),
        "--model",
        "tfidf",
        "--output",
        str(out),
        "--text-column",
        "message",
        "--id-column",
        "ticket",
        "--chunk-size",
        "100",
        "--min-confidence",
        "0.9",
        "--max-chars",
        "300",
        "--quiet",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_then_rerun_skips_finished_blocks_and_is_byte_identical(toy_task, tmp_path):
    pytest.importorskip("ray")
    src = tmp_path / "in.csv"
    make_input(src)
    ref = tmp_path / "reference"
    ref.mkdir()
    done = subprocess.run(_command(toy_task, src, ref / "out.csv"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out.csv"
    ray_cmd = _command(toy_task, src, out, "--engine", "ray", "--workers", "2")
    proc = subprocess.Popen(ray_cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while proc.poll() is None and (state_rows(out) or 0) < 300 and time.time() < deadline:
        time.sleep(0.005)
    # The whole process group, as a killed job loses it: the driver and the local Ray cluster it started.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = state_rows(out) or 0
    assert 0 < killed_at < ROWS, f"the kill landed at row {killed_at}; the test proved nothing"
    assert not out.exists()
    rerun = subprocess.run(ray_cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"blocks ({killed_at:,} rows) already done, skipped" in rerun.stdout and "complete (resumed)" in rerun.stdout
    assert outputs(work) == outputs(ref)


def test_one_line_errors_without_ray_or_cluster(toy_task, tmp_path, monkeypatch):
    from dispute_classifier.batch import ray_engine as classify_ray

    with pytest.raises(UserError, match="needs Ray, which is not installed: pip install 'dispute-classifier\\[scale\\]'"):
        monkeypatch.setitem(sys.modules, "ray", None)
        classify_ray.connect(None)
    monkeypatch.undo()
    pytest.importorskip("ray")
    t0 = time.time()
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        classify_ray.connect("127.0.0.1:1")
    with pytest.raises(UserError, match="expected auto, HOST:PORT or ray://HOST:PORT"):
        classify_ray.connect("nonsense")
    assert time.time() - t0 < 30
    with pytest.raises(UserError, match="need --engine ray"):
        ClassifyConfig(input="in.csv", output="out.csv", model="tfidf", workers=2)
    src = tmp_path / "in.csv"
    make_input(src)
    res = subprocess.run(
        _command(toy_task, src, tmp_path / "out.csv", "--engine", "ray", "--ray-address", "ray://127.0.0.1:1"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot reach the Ray cluster" in res.stderr, res.stderr


def test_api_models_are_called_from_the_driver_within_the_budget(ray_cluster, toy_task, tmp_path):
    """API-billed models are not spread over actors: the driver calls them block by block, so the
    backend's concurrency limit and the local engine's --max-cost guard hold as they are."""
    from tests.unit.test_classify import api_model, config, read_csv, write_input

    write_input(tmp_path / "in.csv", bad=False)
    model = api_model()
    with pytest.raises(UserError, match=r"estimated cost \$0.04 is over --max-cost \$0.01"):
        classify_file(config(tmp_path, toy_task, max_cost=0.01, engine="ray"), model=model, out=io.StringIO())
    assert model.classifier.queries == 0
    model = api_model(with_estimate=False)
    with pytest.raises(UserError, match=r"stopped after row 21 of 40.*rerun with a higher --max-cost"):
        classify_file(config(tmp_path, toy_task, max_cost=0.025, engine="ray"), model=model, out=io.StringIO())
    assert model.classifier.queries == 21  # 3 blocks of 7 at $0.001: a fourth would cost $0.028
    summary = classify_file(config(tmp_path, toy_task, max_cost=1.0, engine="ray"), model=api_model(with_estimate=False), out=io.StringIO())
    assert summary.resumed and summary.cost_usd == pytest.approx(0.04) and "on the driver (API model)" in (summary.note or "")
    assert len(read_csv(tmp_path / "out.csv")) == 40


def test_glob_of_parquet_shards_matches_one_csv(ray_cluster, toy_task, tmp_path):
    """Parquet shards named by a glob resume at row counts; the output equals the local engine's
    on the same rows in one CSV."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    words = ["please refund my order", "why was I charged a fee of", "I did not make payment", "hello"]
    rows = [(f"P{i}", f"{words[i % 4]} {i}") for i in range(900)] + [("P5", "a duplicate id"), ("P901", "")]
    (tmp_path / "shards").mkdir()
    for n, start in enumerate(range(0, len(rows), 400)):
        part = rows[start : start + 400]
        pq.write_table(
            pa.table({"ticket": [r for r, _ in part], "message": [t for _, t in part]}),
            tmp_path / "shards" / f"s{n}.parquet",
            row_group_size=150,
        )
    with open(tmp_path / "all.csv", "w", newline="", encoding="utf-8") as f:
        import csv

        csv.writer(f).writerows([("ticket", "message"), *rows])
    common = dict(model="tfidf", task=str(toy_task), text_column="message", id_column="ticket", chunk_size=120, quiet=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    classify_file(ClassifyConfig(input=str(tmp_path / "all.csv"), output=str(tmp_path / "a" / "out.csv"), **common), out=io.StringIO())  # type: ignore[arg-type]
    summary = classify_file(
        ClassifyConfig(
            input=str(tmp_path / "shards" / "s*.parquet"), output=str(tmp_path / "b" / "out.csv"), engine="ray", workers=2, **common
        ),
        out=io.StringIO(),
    )  # type: ignore[arg-type]
    assert (tmp_path / "b" / "out.csv").read_bytes() == (tmp_path / "a" / "out.csv").read_bytes()
    assert summary.error_counts == {"duplicate_id": 1, "empty_text": 1} and "3 shard(s), 9 block(s)" in (summary.note or "")
