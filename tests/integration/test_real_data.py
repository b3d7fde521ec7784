"""The worked task on the real BANKING77 files (found through $DISPUTE_CLASSIFIER_DATA)."""

import pytest

from dispute_classifier.core import datacheck
from dispute_classifier.core.task import load_data, load_task
from evaluation.evaluate import evaluate

pytestmark = pytest.mark.dataset


@pytest.fixture(scope="module")
def disputes(banking77_dir):
    return load_data(load_task("disputes"), banking77_dir)


def test_disputes_sizes_and_labels(disputes):
    assert len(disputes.split("test")) == 640
    assert len(disputes.fit_split("test")) == 2646  # the whole training file of the 16 intents
    assert len(disputes.split("validation")) + len(disputes.split("train")) == 2646
    assert set(disputes.split("test").labels) == set(disputes.spec.labels)
    assert disputes.dropped_other_labels == (10003 - 2646) + (3080 - 640)


def test_data_check_finds_real_overlap(disputes, banking77_dir):
    report = datacheck.check(disputes)
    ids = {o["test_id"] for o in report["train_test_overlap"]}
    assert "test:1434" in ids  # "There are a few transaction that I don't recognize, ..."
    full = datacheck.check(load_data(load_task("banking77"), banking77_dir))
    assert len(full["train_test_overlap"]) > len(report["train_test_overlap"])


@pytest.mark.parametrize("approach, floor", [("tfidf", 0.90), ("embedding", 0.90)])
def test_classical_baselines_land_near_reference(disputes, approach, floor, tmp_path):
    """Reference points: TF-IDF+LR 93.1 %, MiniLM+LR 93.6 % (quick scripts, ../shared/GUIDE.md)."""
    from dispute_classifier.core.plugins import get_approach
    from dispute_classifier.core.runconfig import RunConfig

    clf = get_approach(approach).build(RunConfig(approach=approach))
    run = evaluate(clf, disputes, "test", approach=approach, runs_root=tmp_path, progress=False)
    assert run.metrics["accuracy"] >= floor
    lo, hi = run.metrics["accuracy_ci95"]
    assert lo < run.metrics["accuracy"] < hi
