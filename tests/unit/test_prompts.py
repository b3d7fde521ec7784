from dispute_classifier.core.prompts import PromptConfig, build_messages
from dispute_classifier.core.task import load_task


def test_styles():
    task = load_task("disputes")
    bare = build_messages(task, "  my card was stolen ", PromptConfig(style="bare")).messages
    assert bare == [{"role": "user", "content": "my card was stolen"}]
    full = build_messages(task, "my card was stolen").messages
    assert full[0]["role"] == "system" and all(label in full[0]["content"] for label in task.labels)
    assert task.labels["compromised_card"] in full[0]["content"]
    short = build_messages(task, "my card was stolen", PromptConfig(style="short")).messages
    assert len(short) == 2 and "compromised_card" not in short[0]["content"]
    assert len(short[0]["content"]) < len(full[0]["content"]) / 5


def test_examples_as_turns_and_as_list():
    task = load_task("disputes")
    ex = [("charged twice", "transaction_charged_twice"), ("refund please", "request_refund")]
    turns = build_messages(task, "q", examples=ex).messages
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert turns[2]["content"] == "transaction_charged_twice"
    listed = build_messages(task, "q", PromptConfig(examples_as_turns=False), examples=ex).messages
    assert len(listed) == 2 and "Category: request_refund" in listed[0]["content"]


def test_over_long_text_is_truncated_and_counted():
    task = load_task("disputes")
    p = build_messages(task, "word " * 500, PromptConfig(max_text_chars=100))
    assert p.truncated and len(p.messages[-1]["content"]) <= 102
    assert not build_messages(task, "short").truncated


def test_short_instructions_from_a_description_end_on_a_sentence_or_word():
    """Without prompt.short_instructions or a domain, the short prompt quotes the task's first
    sentence; a long one is cut at a word, never mid-word, and a decimal point is no sentence end."""
    from dataclasses import replace

    from dispute_classifier.core.prompts import first_sentence, task_short_instructions

    assert first_sentence("Routes refunds. Everything else is dropped.") == "Routes refunds"
    assert first_sentence("Scores 93.66 % on test. More text.") == "Scores 93.66 % on test"
    long = "Messages about " + " ".join(["contested payments"] * 10) + " and each route"
    cut = first_sentence(long, limit=120)
    assert cut.endswith(" …") and len(cut) <= 122
    assert long.startswith(cut[:-2]) and long[len(cut) - 2] == " "  # the cut falls on a space
    assert first_sentence("All intents (online banking, as published by many teams in the past years, " + "x " * 40).count("(") == 0
    banking = load_task("banking77")
    assert not banking.prompt.short_instructions and not banking.prompt.domain  # the fallback path is the one used
    line = task_short_instructions(banking)
    assert line.count("(") == line.count(")") and "BERT-large 93)" not in line and "(BERT" not in line
    what = line[line.index("(") + 1 : line.rindex(")")]
    assert banking.description.replace("\n", " ").startswith(what.removesuffix(" …"))
    plain = replace(banking, description="Short one.")
    assert task_short_instructions(plain) == "Classify this message (Short one). Answer with the category name only."
