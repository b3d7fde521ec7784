"""Task files: one reader for task files and batch input (CSV, JSONL, Parquet by the file's
ending, the same error messages), empty label descriptions refused, a did-you-mean for a label
misspelt in the YAML, and the task named the way ``--task`` takes it in suggested commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispute_classifier.core import tabular
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import TASK_DIR, load_data, load_task, read_rows, task_command, task_ref
from tests.conftest import task_folder, write_csv

ROWS = [(f"my card {i} was stolen", "card_lost", f"c{i}") for i in range(6)] + [(f"what is the fee {i}", "fee", f"f{i}") for i in range(6)]


def task_yaml(
    folder: Path,
    train: str,
    test: str,
    labels: str = "card_lost: A card was lost.\n  fee: A fee question.",
    columns: str = "{text: message, label: queue, id: ticket}",
) -> Path:
    path = folder / "tickets.yaml"
    path.write_text(
        "name: tickets\n"
        f"source:\n  files: {{train: {train}, test: {test}}}\n"
        f"columns: {columns}\n"
        f"labels:\n  {labels}\n"
        "splits:\n  test: {file: test}\n",
        encoding="utf-8",
    )
    return path


def write_jsonl(path: Path, rows=ROWS) -> Path:
    path.write_text("".join(json.dumps({"ticket": i, "message": t, "queue": lab}) + "\n" for t, lab, i in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows=ROWS) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"ticket": [i for _, _, i in rows], "message": [t for t, _, _ in rows], "queue": [lab for _, lab, _ in rows]}), path
    )
    return path


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    return task_folder(tmp_path, monkeypatch, "tickets")


def test_jsonl_and_parquet_task_files_read_like_csv(folder):
    write_csv(folder / "train.csv", [(i, t, lab) for t, lab, i in ROWS], header=("ticket", "message", "queue"))  # type: ignore[arg-type]
    write_jsonl(folder / "train.jsonl")
    write_parquet(folder / "test.parquet")
    from_csv = load_data(load_task(task_yaml(folder, "train.csv", "test.parquet")))
    mixed = load_data(load_task(task_yaml(folder, "train.jsonl", "test.parquet")))
    for split in ("train", "test"):
        assert mixed.split(split).texts == from_csv.split(split).texts == [t for t, _, _ in ROWS]
        assert mixed.split(split).labels == [lab for _, lab, _ in ROWS]
        assert mixed.split(split).ids == [i for _, _, i in ROWS]


def test_a_task_file_fails_with_the_batch_readers_message(folder):
    """The same file gives the same error as a task file and as `classify` input; only the
    setting to change differs (a task's column setting, or classify's flag)."""
    write_jsonl(folder / "train.jsonl")
    write_parquet(folder / "test.parquet")
    spec = load_task(task_yaml(folder, "train.jsonl", "test.parquet", columns="{text: body, label: queue}"))
    for name in ("train.jsonl", "test.parquet"):
        with pytest.raises(UserError) as as_task:
            read_rows(folder / name, spec)
        with pytest.raises(UserError) as as_input:
            list(tabular.open_reader(folder / name, "body", None))
        task_msg, input_msg = str(as_task.value), str(as_input.value)
        assert task_msg.endswith("Set columns.text in task 'tickets'") and input_msg.endswith("Set --text-column")
        assert task_msg.rsplit(" Set ", 1)[0] == input_msg.rsplit(" Set ", 1)[0]
        assert "no field 'body'" in task_msg or "no column 'body'" in task_msg


def test_a_missing_label_field_in_jsonl_names_the_setting(folder):
    write_jsonl(folder / "train.jsonl")
    write_jsonl(folder / "test.jsonl")
    with pytest.raises(
        UserError, match=r"train.jsonl: line 1 has no field 'category'; fields found: ticket, message, queue. Set columns.label in task"
    ):
        load_data(load_task(task_yaml(folder, "train.jsonl", "test.jsonl", columns="{text: message, label: category}")))


def test_an_unknown_file_ending_names_the_formats(folder):
    (folder / "train.txt").write_text("message,queue\n")
    write_jsonl(folder / "test.jsonl")
    with pytest.raises(UserError, match=r"unknown file type '.txt'; use one of .csv, .jsonl"):
        load_data(load_task(task_yaml(folder, "train.txt", "test.jsonl")))


def test_a_broken_jsonl_line_names_the_line(folder):
    write_jsonl(folder / "train.jsonl")
    with open(folder / "train.jsonl", "a", encoding="utf-8") as f:
        f.write('{"message": "half a line\n')
    write_jsonl(folder / "test.jsonl")
    with pytest.raises(UserError, match=r"train.jsonl: line 13: not valid JSON"):
        load_data(load_task(task_yaml(folder, "train.jsonl", "test.jsonl")))


@pytest.mark.parametrize("description", ['""', "'   '", ""])
def test_an_empty_label_description_is_an_error_like_a_missing_one(folder, description):
    write_jsonl(folder / "train.jsonl")
    path = task_yaml(folder, "train.jsonl", "train.jsonl", labels=f"card_lost: {description}\n  fee: A fee question.")
    with pytest.raises(UserError, match=r"config key 'labels.card_lost' may not be empty"):
        load_task(path)


def test_a_label_misspelt_in_the_yaml_gets_a_did_you_mean(folder, capsys):
    write_jsonl(folder / "train.jsonl")
    write_jsonl(folder / "test.jsonl")
    path = task_yaml(folder, "train.jsonl", "test.jsonl", labels="card_lsot: A card was lost.\n  fee: A fee question.")
    with pytest.raises(
        UserError, match=r"line 1 has label 'card_lost', which is not in task 'tickets' \(2 labels\). Did you mean 'card_lsot'"
    ):
        load_data(load_task(path))
    load_data(load_task(path), strict=False)  # the data check's way: rows counted as bad, the spelling named
    assert "label 'card_lsot' has 0 rows in train, test; did you mean 'card_lost'? The data has 12 rows of it" in capsys.readouterr().err


def test_a_label_far_from_every_listed_one_gets_no_guess(folder):
    write_jsonl(folder / "train.jsonl", ROWS + [("hello", "chargeback", "x1")])
    write_jsonl(folder / "test.jsonl")
    with pytest.raises(UserError) as err:
        load_data(load_task(task_yaml(folder, "train.jsonl", "test.jsonl")))
    assert "label 'chargeback'" in str(err.value) and "Did you mean" not in str(err.value)


def test_task_ref_is_the_name_of_a_shipped_task_and_the_path_of_an_own_one(folder):
    assert task_ref("disputes", TASK_DIR / "disputes.yaml") == "disputes" == load_task("disputes").ref
    assert task_ref("disputes") == "disputes"  # an old run record without its task file
    own = task_yaml(folder, "train.jsonl", "test.jsonl")
    assert load_task(own).ref == str(own.resolve())
    assert task_ref("disputes", own) == str(own)  # an own task that reuses a shipped name
    spaced = Path("/data/my tasks/t.yaml")
    assert (
        task_command("evaluate", task_ref("t", spaced), "--approach rag")
        == "dispute-classifier evaluate --task '/data/my tasks/t.yaml' --approach rag"
    )
    assert task_command("experiment", "disputes") == "dispute-classifier experiment --task disputes"
