"""Task loading, splits and every bad-input case, on small CSVs made here."""

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import (
    load_data,
    load_task,
    stratified_cut,
    stratified_sample,
)
from tests.conftest import TOY_LABELS, TOY_TEST, TOY_TRAIN, write_csv, write_task


def test_loads_splits_with_stratified_validation(toy_task):
    data = load_data(load_task(toy_task))
    assert set(data.splits) == {"train", "validation", "test"}
    assert len(data.split("validation")) == 6 and len(data.split("train")) == 24  # 20 % of 10 per label
    assert sorted(set(data.split("validation").labels)) == sorted(TOY_LABELS)
    assert not set(data.split("validation").ids) & set(data.split("train").ids)
    # test-split runs learn from the whole training file, never from test
    fit = data.fit_split("test")
    assert len(fit) == 30 and not set(fit.ids) & set(data.split("test").ids)
    assert data.fit_split("validation").ids == data.split("train").ids
    again = load_data(load_task(toy_task))
    assert again.split("validation").ids == data.split("validation").ids  # seeded
    assert data.split("test").ids[0] == "test:2"  # row numbers count the header as row 1


def test_stratified_cut_and_sample():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    keep, cut = stratified_cut(labels, 0.1, seed=0)
    assert len(cut) == 10 and len(keep) == 90 and not set(keep) & set(cut)
    assert [labels[i] for i in cut].count("a") == 5
    assert stratified_cut(labels, 0.1, seed=0) == (keep, cut)
    with pytest.raises(UserError):
        stratified_cut(labels, 1.5, seed=0)


def test_limit_subsample_is_stratified(toy_task):
    data = load_data(load_task(toy_task))
    sub = stratified_sample(data.split("train"), 9, seed=0)
    assert len(sub) == 9 and sorted(set(sub.labels)) == sorted(TOY_LABELS)


def test_drop_mode_keeps_only_task_labels(tmp_path):
    path = write_task(tmp_path, train=TOY_TRAIN + [("where is my card", "card_arrival")] * 3, extra="other_labels: drop\n")
    data = load_data(load_task(path))
    assert data.dropped_other_labels == 3
    assert "card_arrival" not in data.split("train").labels


def test_task_by_name_and_path(toy_task):
    assert load_task("disputes").name == "disputes" and len(load_task("disputes").labels) == 16
    assert len(load_task("banking77").labels) == 77
    assert load_task(str(toy_task)).name == "toy"


# --------------------------------------------------------------------------- bad input


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'nope'.*disputes"):
        load_task("nope")


def test_missing_file_says_where_it_looked(toy_task):
    (toy_task.parent / "test.csv").unlink()
    with pytest.raises(UserError, match="test file 'test.csv' not found.*DISPUTE_CLASSIFIER_DATA"):
        load_data(load_task(toy_task))


def test_wrong_columns_are_named(tmp_path):
    path = write_task(tmp_path, header=("message", "label"))
    (tmp_path / "train.csv").write_text("body,label\nhello,refund\n")
    # the message of `classify`'s reader (one reader for task files and batch input), naming the task's setting
    with pytest.raises(UserError, match=r"train.csv: no column 'message'; columns found: body, label. Set columns.text in task 'toy'"):
        load_data(load_task(path))


def test_label_outside_label_set_names_row(tmp_path):
    path = write_task(tmp_path, train=TOY_TRAIN + [("hello", "chargeback")])
    with pytest.raises(UserError, match=r"train.csv: row 32 has label 'chargeback'"):
        load_data(load_task(path))


def test_empty_text_names_row(tmp_path):
    path = write_task(tmp_path, test=TOY_TEST + [("   ", "fee")])
    with pytest.raises(UserError, match=r"test.csv: row 8 has an empty text"):
        load_data(load_task(path))


def test_non_utf8_names_line(tmp_path):
    path = write_task(tmp_path)
    with open(tmp_path / "test.csv", "ab") as f:
        f.write(b"caf\xe9 fee,fee\n")
    with pytest.raises(UserError, match=r"test.csv: row 8 is not UTF-8 \(byte 0xe9 at character 4\)"):  # rows as a spreadsheet counts them
        load_data(load_task(path))


def test_checksum_mismatch(tmp_path):
    path = write_task(tmp_path, extra="")
    text = path.read_text().replace(
        "files: {train: train.csv, test: test.csv}", "files: {train: train.csv, test: test.csv}\n  sha256: {train: " + "ab" * 32 + "}"
    )
    path.write_text(text)
    with pytest.raises(UserError, match=r"sha256 is [0-9a-f]{64}, but task 'toy' expects abab"):
        load_data(load_task(path))


def test_fewer_than_two_labels(tmp_path):
    path = write_task(tmp_path, labels={"refund": "money back"})
    with pytest.raises(UserError, match="at least two labels"):
        load_task(path)


def test_download_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    path = write_task(tmp_path)
    (tmp_path / "test.csv").unlink()
    path.write_text(
        path.read_text().replace(
            "  files: {train: train.csv, test: test.csv}\n",
            "  files: {train: train.csv, test: test.csv}\n  urls: {test: 'http://127.0.0.1:9/test.csv'}\n",
        )
    )
    with pytest.raises(UserError, match="could not download http://127.0.0.1:9/test.csv.*DISPUTE_CLASSIFIER_DATA"):
        load_data(load_task(path))


def test_download_verifies_checksum(tmp_path, monkeypatch):
    """Downloads go to the user cache through a real HTTP server on loopback."""
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    write_csv(served / "test.csv", TOY_TEST)
    digest = hashlib.sha256((served / "test.csv").read_bytes()).hexdigest()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
        monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
        task_dir = tmp_path / "t"
        task_dir.mkdir()
        path = write_task(task_dir)
        (task_dir / "test.csv").unlink()
        url = f"http://127.0.0.1:{server.server_address[1]}/test.csv"
        path.write_text(
            path.read_text().replace(
                "  files: {train: train.csv, test: test.csv}\n",
                f"  name: toysrc\n  files: {{train: train.csv, test: test.csv}}\n  urls: {{test: '{url}'}}\n  sha256: {{test: {digest}}}\n",
            )
        )
        data = load_data(load_task(path))
        assert len(data.split("test")) == len(TOY_TEST)
        assert (tmp_path / "cache" / "data" / "toysrc" / "test.csv").is_file()
    finally:
        server.shutdown()
