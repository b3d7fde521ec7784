"""Every pre-flight check catches its planted mistake (and passes on correct input)."""

import copy

import pytest

from dispute_classifier.core.prompts import PromptConfig, answer_message, build_messages
from dispute_classifier.core.task import load_task
from finetune import doctor
from finetune.recipe import load_recipe

TEXTS = ["I was charged twice", "my card was stolen", "refund not here yet", "ATM gave less cash"]
LABELS = ["transaction_charged_twice", "compromised_card", "Refund_not_showing_up", "wrong_amount_of_cash_received"]


@pytest.fixture(scope="module")
def setup(tiny_llama):
    """Rows, TRL's prepared rows and a collated batch, exactly as the training script builds them."""
    from dispute_classifier.core.model_source import load_tokenizer
    from finetune.train import build_model, build_trainer

    task = load_task("disputes")
    recipe = load_recipe("smollm2-135m-lora-cpu", [f"model={tiny_llama}", "train.max_steps=1"])
    tok = load_tokenizer(str(tiny_llama))
    rows = [
        {"prompt": build_messages(task, t, PromptConfig(style="short")).messages, "completion": [answer_message(lab)]}
        for t, lab in zip(TEXTS, LABELS)
    ]
    model = build_model(recipe, tok, len(task.labels))
    import tempfile

    trainer = build_trainer(recipe, model, tok, rows, tempfile.mkdtemp())
    prepared = [dict(trainer.train_dataset[i]) for i in range(len(rows))]
    batch = trainer.data_collator([{"input_ids": p["input_ids"], "labels": p["labels"]} for p in prepared])
    return recipe, tok, rows, prepared, batch, model


def test_prompt_mismatch_is_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    assert doctor.check_prompt_matches_inference(tok, rows, prepared).ok
    drifted = copy.deepcopy(rows)
    drifted[1]["prompt"][0]["content"] += " Be brief."  # inference would use another system prompt
    check = doctor.check_prompt_matches_inference(tok, drifted, prepared)
    assert not check.ok and "row 1" in check.detail


def test_loss_on_prompt_is_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    assert doctor.check_prompt_masked(rows, prepared, tok).ok
    unmasked = [dict(p, labels=list(p["input_ids"])) for p in prepared]
    assert not doctor.check_prompt_masked(rows, unmasked, tok).ok


def test_eos_masked_by_pad_collator_is_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2: the trap is real
    assert doctor.check_end_of_turn_kept(tok, rows, batch).ok
    broken = dict(batch)
    labels = batch["labels"].clone()
    labels[batch["input_ids"] == tok.pad_token_id] = -100  # what a naive "mask the pads" collator does
    broken["labels"] = labels
    check = doctor.check_end_of_turn_kept(tok, rows, broken)
    assert not check.ok and "expected" in check.detail


def test_dropped_or_truncated_rows_are_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    lengths = [len(p["input_ids"]) for p in prepared]
    assert doctor.check_no_rows_lost(len(rows), prepared, lengths, 512).ok
    assert not doctor.check_no_rows_lost(len(rows), prepared[:-1], lengths[:-1], 512).ok  # a row dropped
    assert not doctor.check_no_rows_lost(len(rows), prepared, lengths, max(lengths) - 1).ok  # over max_length
    cut = [dict(p, input_ids=p["input_ids"][:-2]) for p in prepared]
    assert "truncated" in doctor.check_no_rows_lost(len(rows), cut, lengths, 512).detail


def test_double_bos_is_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    assert doctor.check_single_bos(tok, prepared).ok
    # the classic mistake: render the chat text, then tokenize it again with special tokens
    rendered = tok.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    doubled = [{"input_ids": [tok.bos_token_id] + tok(rendered, add_special_tokens=False)["input_ids"]}]
    assert not doctor.check_single_bos(tok, doubled).ok


def test_lora_layer_count_is_checked(setup):
    recipe, tok, rows, prepared, batch, model = setup
    n_blocks = model.get_base_model().config.num_hidden_layers
    assert doctor.check_lora_layers(model, recipe.lora.target_modules, n_blocks).ok
    check = doctor.check_lora_layers(model, recipe.lora.target_modules + ["lm_head"], n_blocks)
    assert not check.ok and "expected 8 per block" in check.detail


def test_zero_lora_gradient_is_caught(setup):
    recipe, tok, rows, prepared, batch, model = setup
    assert doctor.check_lora_gradients(model, dict(batch)).ok
    name, frozen = next((n, p) for n, p in model.named_parameters() if "lora_B" in n)
    frozen.requires_grad_(False)
    try:
        check = doctor.check_lora_gradients(model, dict(batch))
    finally:
        frozen.requires_grad_(True)
    assert not check.ok and "1 of" in check.detail


def test_train_test_overlap_is_caught():
    assert doctor.check_no_test_overlap(["a b", "c"], ["d"]).ok
    check = doctor.check_no_test_overlap(["My card  was stolen", "c"], ["my card was stolen"])
    assert not check.ok and "1 training texts" in check.detail


def test_learning_rate_range():
    assert doctor.check_learning_rate(2e-4).ok
    assert not doctor.check_learning_rate(0.1).ok
    assert not doctor.check_learning_rate(1e-7).ok


def test_enforce_raises_with_every_failure():
    from dispute_classifier.core.errors import UserError

    checks = [doctor.Check("a", True, "fine"), doctor.Check("b", False, "broken: fix it")]
    with pytest.raises(UserError, match="b: broken: fix it"):
        doctor.enforce(checks)
