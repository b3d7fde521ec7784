"""Batch classification in-process: bad rows, review routing, resume, budgets, model resolution."""

from __future__ import annotations

import csv
import io
import json
import pickle

import pytest

from dispute_classifier.batch import driver as L
from dispute_classifier.batch import job as C
from dispute_classifier.batch.driver import classify as classify_file
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import INVALID, ClassifierBase, Prediction, Usage
from dispute_classifier.resolution.fitted_cache import fitted_path
from dispute_classifier.resolution.resolve import ResolvedClassifier, resolve_classifier


def write_input(path, n: int = 40, bad: bool = True) -> None:
    """A CSV of ``n`` good rows plus, with ``bad``, one row of every kind the errors file takes."""
    lines = [b"ticket,message"]
    words = ["refund my order", "fee charged twice", "I did not make this payment"]
    lines += [f"t{i},{words[i % 3]} {i}".encode() for i in range(n)]
    if bad:
        lines += [
            b"e1,",  # empty_text
            b"e2,   ",  # empty_text (whitespace only)
            b"e3",  # missing_text (short row)
            b"e4,bad \xff\xfe bytes",  # not_utf8
            b"e5," + b"x" * 120,  # too_long (max_chars=100 below)
            b",no id at all",  # missing_id
            b"t3,a second t3",  # duplicate_id (t3 is a good row above)
        ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def config(tmp_path, task, **kw) -> C.ClassifyConfig:
    base = dict(
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out.csv"),
        model="tfidf",
        task=str(task),
        text_column="message",
        id_column="ticket",
        max_chars=100,
        chunk_size=7,
        quiet=True,
    )
    return C.ClassifyConfig(**{**base, **kw})


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(cfg, **kw):
    return classify_file(cfg, out=io.StringIO(), **kw)


def test_every_bad_row_kind_goes_to_the_errors_file(toy_task, tmp_path):
    write_input(tmp_path / "in.csv")
    summary = run(config(tmp_path, toy_task))
    errors = read_csv(tmp_path / "out.errors.csv")
    assert {e["kind"]: e["row"] for e in errors} == {
        "empty_text": "43",
        "missing_text": "44",
        "not_utf8": "45",
        "too_long": "46",
        "missing_id": "47",
        "duplicate_id": "48",
    }
    assert summary.error_counts == {"not_utf8": 1, "missing_text": 1, "empty_text": 2, "too_long": 1, "missing_id": 1, "duplicate_id": 1}
    dup = next(e for e in errors if e["kind"] == "duplicate_id")
    assert dup["reason"] == "duplicate id 't3' (first at row 5)"
    assert next(e for e in errors if e["kind"] == "not_utf8")["text"] == "bad \ufffd\ufffd bytes"
    out = read_csv(tmp_path / "out.csv")
    assert len(out) == summary.classified == 40 and summary.rows == 47
    assert [r["id"] for r in out] == [f"t{i}" for i in range(40)]
    assert out[0]["predicted"] == "refund" and out[0]["model"] == "tfidf" and out[0]["model_version"] == summary.version
    assert out[0]["cost_usd"] == ""  # self-hosted: no per-row bill (see the module docstring)
    assert "errors: 7 (" in C.format_summary(summary)
    assert not list(tmp_path.glob("*.partial*"))  # nothing left behind


def test_min_confidence_routes_rows_to_review(toy_task, tmp_path):
    write_input(tmp_path / "in.csv", bad=False)
    summary = run(config(tmp_path, toy_task, min_confidence=0.999))
    review = read_csv(tmp_path / "out.review.csv")
    assert summary.review_rows == len(review) > 0
    assert all(float(r["confidence"]) < 0.999 for r in review)
    assert all(float(r["confidence"]) >= 0.999 for r in read_csv(tmp_path / "out.csv"))
    assert summary.classified + summary.review_rows == 40


def test_without_id_column_the_row_number_is_the_id(toy_task, tmp_path):
    write_input(tmp_path / "in.csv", bad=False)
    run(config(tmp_path, toy_task, id_column=""))
    assert [r["id"] for r in read_csv(tmp_path / "out.csv")][:2] == ["2", "3"]


def test_resume_drops_a_half_written_chunk(toy_task, tmp_path):
    """Simulate a kill between writing a chunk and recording it: the rerun must drop it."""
    write_input(tmp_path / "in.csv")
    cfg = config(tmp_path, toy_task)
    run(cfg)
    reference = {p.name: p.read_bytes() for p in tmp_path.glob("out*.csv")}
    for p in tmp_path.glob("out*.csv"):
        p.unlink()

    class Stop(Exception):
        pass

    calls = 0
    real_write = L.write_state

    def crash_after_third_chunk(path, state):
        nonlocal calls
        calls += 1
        if calls == 5:  # the initial state, three chunks, then "killed" before recording the fourth
            raise Stop
        real_write(path, state)

    L.write_state = crash_after_third_chunk  # the driver's commit step
    try:
        with pytest.raises(Stop):
            run(cfg)
    finally:
        L.write_state = real_write
    assert not (tmp_path / "out.csv").exists() and (tmp_path / "out.csv.partial").exists()
    state = json.loads((tmp_path / "out.csv.partial.state").read_text())
    assert state["input"]["rows"] == 21
    summary = run(cfg)
    assert summary.resumed and summary.rows == 47
    assert {p.name: p.read_bytes() for p in tmp_path.glob("out*.csv")} == reference


def test_kill_while_renaming_is_finished_by_the_rerun(toy_task, tmp_path, monkeypatch):
    write_input(tmp_path / "in.csv")
    cfg = config(tmp_path, toy_task, min_confidence=0.9)
    real_publish = C.tabular.publish

    def killed_before_output(path):
        if path.name == "out.csv":
            raise KeyboardInterrupt
        real_publish(path)

    monkeypatch.setattr(C.tabular, "publish", killed_before_output)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    # The side files are in place, the output is not: the run is not complete yet.
    assert (tmp_path / "out.errors.csv").exists() and not (tmp_path / "out.csv").exists()
    monkeypatch.setattr(C.tabular, "publish", real_publish)
    summary = run(cfg)
    assert summary.resumed and summary.rows == 47 and (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob("*.partial*"))


def test_rerun_with_other_arguments_is_refused(toy_task, tmp_path):
    write_input(tmp_path / "in.csv")
    cfg = config(tmp_path, toy_task)
    real_write = L.write_state
    L.write_state = lambda path, state: real_write(path, state) if state.input is None else (_ for _ in ()).throw(KeyboardInterrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(cfg)
    finally:
        L.write_state = real_write
    with pytest.raises(UserError, match=r"other arguments or input \(max_chars: 100 -> 50\).*--restart"):
        run(config(tmp_path, toy_task, max_chars=50))
    (tmp_path / "in.csv").write_bytes((tmp_path / "in.csv").read_bytes() + b"t99,one more\n")
    with pytest.raises(UserError, match="sha256"):
        run(cfg)
    assert run(config(tmp_path, toy_task, restart=True)).rows == 48


def test_finished_output_is_not_overwritten_silently(toy_task, tmp_path):
    write_input(tmp_path / "in.csv", bad=False)
    run(config(tmp_path, toy_task))
    with pytest.raises(UserError, match="already exist.*--overwrite"):
        run(config(tmp_path, toy_task))
    assert run(config(tmp_path, toy_task, overwrite=True)).rows == 40


@pytest.mark.parametrize("ending", [".jsonl", ".parquet"])
def test_other_formats_in_and_out(toy_task, tmp_path, ending):
    if ending == ".parquet":
        pytest.importorskip("pyarrow")
    src = tmp_path / f"in{ending}"
    rows = [{"ticket": f"t{i}", "message": f"refund my order {i}" if i != 3 else None} for i in range(10)]
    if ending == ".jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=4)
    summary = run(config(tmp_path, toy_task, input=str(src), output=str(tmp_path / f"out{ending}")))
    assert summary.classified == 9 and summary.error_counts == {"missing_text": 1}
    if ending == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(tmp_path / "out.parquet")
        assert table.num_rows == 9 and table.column_names[:3] == ["id", "text", "predicted"]
        assert pq.read_table(tmp_path / "out.errors.parquet").to_pylist()[0]["row"] == 4


class FakeApi(ClassifierBase):
    """An API-billed classifier: a tenth of a cent per query, and a cost estimate."""

    name = "fake-api"
    billing = "api"

    def __init__(self, with_estimate: bool = True) -> None:
        self.queries = 0
        self.with_estimate = with_estimate

    def fit(self, texts, labels):
        return self

    def predict(self, texts):
        self.queries += len(texts)
        return [
            Prediction("refund" if "refund" in t else INVALID, 0.9, Usage(input_tokens=len(t.split()), output_tokens=1, cost_usd=0.001))
            for t in texts
        ]

    def estimate_cost(self, texts):
        return 0.001 * len(texts) if self.with_estimate else None


def api_model(**kw) -> ResolvedClassifier:
    return ResolvedClassifier(FakeApi(**kw), "fake-api", "2024-01", "registry")


def test_api_model_prints_estimate_and_bills_per_row(toy_task, tmp_path):
    write_input(tmp_path / "in.csv", bad=False)
    out = io.StringIO()
    summary = classify_file(config(tmp_path, toy_task, min_confidence=0.5), model=api_model(), out=out)
    assert "cost estimate: $0.04 for 40 rows" in out.getvalue()
    assert summary.cost_usd == pytest.approx(0.04) and summary.billing == "api"
    rows = read_csv(tmp_path / "out.csv") + read_csv(tmp_path / "out.review.csv")
    assert {r["cost_usd"] for r in rows} == {"0.001"} and {r["model_version"] for r in rows} == {"2024-01"}
    # Answers outside the label set go to review whatever their confidence.
    assert {r["predicted"] for r in read_csv(tmp_path / "out.review.csv")} == {INVALID}
    assert "cost $0.04 (API" in C.format_summary(summary)


def test_max_cost_refuses_to_start_when_the_estimate_is_over(toy_task, tmp_path):
    write_input(tmp_path / "in.csv", bad=False)
    model = api_model()
    with pytest.raises(UserError, match=r"estimated cost \$0.04 is over --max-cost \$0.01"):
        classify_file(config(tmp_path, toy_task, max_cost=0.01), model=model, out=io.StringIO())
    assert model.classifier.queries == 0


def test_max_cost_stops_before_exceeding_and_resumes_with_more_budget(toy_task, tmp_path):
    """Without an estimate up front, the guard uses the measured cost per row."""
    write_input(tmp_path / "in.csv", bad=False)
    model = api_model(with_estimate=False)
    with pytest.raises(UserError, match=r"stopped after row 21 of 40.*rerun with a higher --max-cost"):
        classify_file(config(tmp_path, toy_task, max_cost=0.025), model=model, out=io.StringIO())
    assert model.classifier.queries == 21  # 3 chunks of 7 at $0.001: a fourth would cost $0.028
    summary = classify_file(config(tmp_path, toy_task, max_cost=1.0), model=api_model(with_estimate=False), out=io.StringIO())
    assert summary.resumed and summary.cost_usd == pytest.approx(0.04)
    assert len(read_csv(tmp_path / "out.csv")) == 40


def test_unknown_model_names_the_choices(toy_task, monkeypatch, tmp_path):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "no-models"))
    with pytest.raises(
        UserError, match=r"unknown model 'my-lora:3'; approaches: tfidf, embedding, knn.*models list.*no saved model 'my-lora'"
    ):
        resolve_classifier("my-lora:3", load_task(toy_task), C.approach_settings(str(toy_task)))


def test_fine_tuned_names_go_to_the_finetuned_approach_when_there_is_one(toy_task, monkeypatch, register_approach):
    """Saved models are served by the `finetuned` approach (settings field `model`); a stand-in
    classifier here, so the test needs no trained model."""
    import dispute_classifier.resolution.resolve as R
    from dispute_classifier.core.plugins import Approach
    from finetune.classifier import FinetunedConfig

    class Saved(FakeApi):
        billing = "self-hosted"

        def __init__(self, ref):
            super().__init__()
            if not ref.startswith("my-lora"):
                raise UserError(f"no saved model '{ref}'")
            self.name = f"finetuned:{ref}"

    register_approach(
        Approach("finetuned", "saved", "finetuned", lambda cfg: Saved(cfg.section("finetuned").model), {"finetuned": FinetunedConfig})
    )
    model = resolve_classifier("my-lora:3", load_task(toy_task), C.approach_settings(str(toy_task)))
    assert (model.name, model.source) == ("finetuned:my-lora:3", "fitted, not cached")
    with pytest.raises(UserError, match=r"unknown model 'other'; approaches: .*finetuned.*\. no saved model 'other'"):
        resolve_classifier("other", load_task(toy_task), C.approach_settings(str(toy_task)))
    assert R.FINETUNED_APPROACH == "finetuned"


def test_fitted_model_is_cached_per_data_and_settings(toy_task, monkeypatch):
    spec = load_task(toy_task)
    first = resolve_classifier("tfidf", spec, C.approach_settings(str(toy_task)))
    again = resolve_classifier("tfidf", spec, C.approach_settings(str(toy_task)))
    other = resolve_classifier("tfidf", spec, C.approach_settings(str(toy_task), overrides=["tfidf.C=1"]))
    assert (first.source, again.source, other.source) == ("fitted", "cached", "fitted")
    assert first.version == again.version != other.version
    assert fitted_path("toy", "tfidf", first.version).is_file()
    assert again.classifier.predict(["refund my order"])[0].label == "refund"


def test_embedding_classifiers_pickle_without_their_model_or_database():
    from baselines.classical import KnnClassifier
    from baselines.embeddings import Embedder

    clf = KnnClassifier()
    clf.embedder_ = Embedder()
    clf.embedder_._st = object()  # stands in for a loaded SentenceTransformer
    clf.embedder_._db = __import__("sqlite3").connect(":memory:")
    clone = pickle.loads(pickle.dumps(clf))
    assert clone.embedder_._st is None and clone.embedder_._db is None and clone.embedder_.model == "all-MiniLM-L6-v2"
    assert clf.embedder_._st is not None  # the original keeps its model


def test_config_errors_name_the_flag():
    with pytest.raises(UserError, match="--chunk-size"):
        C.ClassifyConfig(input="a.csv", output="b.csv", model="tfidf", chunk_size=0)
    with pytest.raises(UserError, match="--min-confidence"):
        C.ClassifyConfig(input="a.csv", output="b.csv", model="tfidf", min_confidence=1.5)


def test_a_lone_surrogate_row_goes_to_the_errors_file_and_the_job_finishes(toy_task, tmp_path):
    """A JSONL row whose text is the valid JSON escape "\\ud800" (no UTF-8 exists for it) is an
    error row of its own kind; the other rows are classified, and a resume from a chunk that
    holds it (the job stopped after writing it, before recording it) finishes too."""
    rows = [{"id": f"t{i}", "text": f"refund my order {i}"} for i in range(20)]
    lines = [json.dumps(r) for r in rows]
    lines[9] = '{"id": "s1", "text": "refund \\ud800 please"}'
    lines[15] = '{"id": "s2\\udfff", "text": "fee charged"}'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = config(tmp_path, toy_task, input=str(tmp_path / "in.jsonl"), text_column="text", id_column="id", chunk_size=4)

    class Stop(Exception):
        pass

    calls, real_write = 0, L.write_state

    def crash_after_the_surrogate_chunk(path, state):
        nonlocal calls
        calls += 1
        if calls == 4:  # the initial state, two chunks, then "killed" before recording the third (rows 9-12)
            raise Stop
        real_write(path, state)

    L.write_state = crash_after_the_surrogate_chunk
    try:
        with pytest.raises(Stop):
            run(cfg)
    finally:
        L.write_state = real_write
    summary = run(cfg)
    assert summary.resumed and summary.rows == 20 and summary.classified == 18
    assert summary.error_counts == {"invalid_unicode": 2}
    errors = read_csv(tmp_path / "out.errors.csv")
    assert [(e["row"], e["kind"]) for e in errors] == [("10", "invalid_unicode"), ("16", "invalid_unicode")]
    assert "lone surrogate" in errors[0]["reason"] and errors[0]["text"] == "refund \ufffd please"
    assert "id" in errors[1]["reason"]
    assert len(read_csv(tmp_path / "out.csv")) == 18


def test_an_unwritable_output_is_one_line_before_the_model_loads(toy_task, tmp_path, capsys):
    from dispute_classifier.commands.cli import main

    write_input(tmp_path / "in.csv", bad=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for flags in (["--output", str(blocker / "out.csv")], ["--output", str(tmp_path / "o.csv"), "--errors", str(blocker / "e.csv")]):
        rc = main(["classify", str(tmp_path / "in.csv"), "--model", "tfidf", "--task", str(toy_task), "--text-column", "message", *flags])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "cannot write there" in err and flags[-2] in err, err
