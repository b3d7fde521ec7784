from dataclasses import dataclass, field

import pytest

from dispute_classifier.core.config import (
    describe,
    field_docs,
    from_dict,
    load_config,
    parse_overrides,
)
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig


def test_defaults_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("approach: knn\nknn: {k: 3}\n")
    cfg = load_config(RunConfig, path, ["knn.k=7", "tfidf.C=0.5", "limit=100"])
    assert cfg.approach == "knn" and cfg.section("knn").k == 7 and cfg.section("tfidf").C == 0.5 and cfg.limit == 100
    assert cfg.section("embedding").C == 10.0  # untouched default


def test_unknown_key_is_named():
    with pytest.raises(UserError, match="unknown config key 'tfidf.CC'"):
        from_dict(RunConfig, {"tfidf": {"CC": 1}})
    with pytest.raises(UserError, match="unknown config key 'aproach'"):
        from_dict(RunConfig, {"aproach": "tfidf"})


def test_type_errors_name_the_key():
    with pytest.raises(UserError, match="'knn.k' must be a whole number"):
        from_dict(RunConfig, {"knn": {"k": "many"}})
    with pytest.raises(UserError, match="split must be 'test' or 'validation'"):
        from_dict(RunConfig, {"split": "train"})
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["oops"])


def test_every_field_has_a_docstring_for_help():
    rows = describe(RunConfig)
    assert rows and all(doc for _, _, doc in rows), [k for k, _, d in rows if not d]
    assert "tfidf.C" in {k for k, _, _ in rows}


def test_field_docs_reads_literal_under_field():
    @dataclass
    class C:
        x: int = 1
        """The x."""
        y: list = field(default_factory=list)
        """The y."""

    assert field_docs(C) == {"x": "The x.", "y": "The y."}


def test_scientific_notation_without_dot_is_a_number():
    from finetune.recipe import load_recipe

    assert load_recipe("smollm2-135m-lora-cpu", ["train.learning_rate=2e-4"]).train.learning_rate == 2e-4
    with pytest.raises(UserError, match="must be a number"):
        load_recipe("smollm2-135m-lora-cpu", ["train.learning_rate=fast"])
