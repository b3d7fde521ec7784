"""The data check finds planted duplicates, overlaps, conflicts and bad rows."""

from dispute_classifier.core import datacheck
from dispute_classifier.core.task import load_data, load_task
from tests.conftest import TOY_TEST, TOY_TRAIN, write_task


def test_planted_problems_are_found(tmp_path):
    train = TOY_TRAIN + [
        ("please refund my order number 1", "refund"),  # exact duplicate
        ("PLEASE  refund my order number 2 ", "refund"),  # normalised duplicate
        ("why was I charged a fee of 3 pounds", "fraud"),  # conflicting label
        ("", "fee"),  # empty text
        ("x" * 50, "fee"),  # over-long (limit 40 below)
    ]
    test = TOY_TEST + [("Please refund my order number 4", "refund")]  # overlaps train
    path = write_task(tmp_path, train=train, test=test, extra="max_text_chars: 40\n")
    report = datacheck.check(load_data(load_task(path), strict=False), sample_size=5)
    assert len(report["train_duplicates_exact"]) == 2  # number 1 and fee of 3
    assert len(report["train_duplicates_normalised"]) == 3
    assert [c["labels"] for c in report["conflicting_labels"]] == [["fee", "fraud"]]
    reasons = sorted(b["reason"] for b in report["bad_rows"])
    assert reasons == ["empty or whitespace-only text", "text longer than 40 characters"]
    (overlap,) = report["train_test_overlap"]
    assert overlap["test_label"] == "refund" and overlap["train_labels"] == ["refund"] and not overlap["exact"]
    assert len(report["sample"]) == 5
    assert report["sizes"]["test"] == len(test)
    md = datacheck.to_markdown(report)
    assert "Train/test overlap (1 test texts also in train)" in md and "fee, fraud" in md
    js, md_path = datacheck.write_report(report, tmp_path / "out")
    assert js.is_file() and md_path.is_file()


def test_sample_is_seeded(toy_task):
    data = load_data(load_task(toy_task))
    assert datacheck.check(data, 5, seed=1)["sample"] == datacheck.check(data, 5, seed=1)["sample"]
    assert datacheck.check(data, 5, seed=1)["sample"] != datacheck.check(data, 5, seed=2)["sample"]
