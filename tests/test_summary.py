"""The running summary: the wiring with a deterministic fake model; one run with the real embedded model
(slow)."""

from __future__ import annotations

import pytest

from rag.backends.base import complete_with
from rag.backends.embedded import EmbeddedBackend
from rag.errors import PromptError
from rag.schema import Message
from rag.summary import SUMMARY_SYSTEM, fallback_summary, summarize
from tests.fake_model import FakeModel

BADGE = [
    Message("user", "Hi, I'm Dana and my badge number is 4417. Which Llama 2 sizes exist?"),
    Message("assistant", "Llama 2 comes in 7B, 13B and 70B sizes."),
]


def test_the_summary_prompt_wiring() -> None:
    model = FakeModel(
        "Updated summary: Dana (badge 4417), an Ollama user, asked which Llama 2 sizes exist: 7B, 13B, 70B."
    )
    summary = summarize("The user runs Ollama.", BADGE, model, max_words=50)
    assert summary == "Dana (badge 4417), an Ollama user, asked which Llama 2 sizes exist: 7B, 13B, 70B."
    assert model.calls == [
        [
            Message("system", SUMMARY_SYSTEM.format(max_words=50)),
            Message(
                "user",
                "Summary so far:\nThe user runs Ollama.\n\n"
                "New turns:\n"
                "User: Hi, I'm Dana and my badge number is 4417. Which Llama 2 sizes exist?\n"
                "Assistant: Llama 2 comes in 7B, 13B and 70B sizes.\n\n"
                "Updated summary:",
            ),
        ]
    ]
    assert "at most 50 words" in model.calls[0][0].content


def test_the_first_summary_says_there_was_none() -> None:
    model = FakeModel("Dana (badge 4417) asked about Llama 2 sizes.")
    summarize("", BADGE, model)
    assert model.calls[0][1].content.startswith("Summary so far:\n(none)\n\nNew turns:\nUser: Hi, I'm Dana")


def test_no_turns_no_call() -> None:
    model = FakeModel("unused")
    assert summarize("  The user runs Ollama. ", [], model) == "The user runs Ollama."
    assert model.calls == []


@pytest.mark.parametrize(
    "reply", ["", "  \n", "Updated summary:", "Summary so far:\n(none)\n\nUpdated summary:", "</s>"]
)
def test_an_unusable_summary_falls_back_to_the_turns_themselves(reply: str) -> None:
    summary = summarize("The user runs Ollama.", BADGE, FakeModel(reply))
    assert summary == (
        "The user runs Ollama.\n"
        "User asked: Hi, I'm Dana and my badge number is 4417. Which Llama 2 sizes exist?\n"
        "Assistant answered: Llama 2 comes in 7B, 13B and 70B sizes."
    )
    assert "my badge number is 4417" in summary


def test_the_fallback_keeps_the_first_200_characters_of_each_turn() -> None:
    long = "my badge number is 4417 " + "and some more words " * 30
    summary = fallback_summary("", [Message("user", long), Message("assistant", "Noted.")])
    first, second = summary.split("\n")
    assert first.startswith("User asked: my badge number is 4417")
    assert len(first) <= len("User asked: ") + 200
    assert second == "Assistant answered: Noted."


def test_a_summary_that_drops_a_fact_the_user_gave_gets_it_back() -> None:
    summary = summarize("", BADGE, FakeModel("The user asked which Llama 2 sizes exist."))
    assert summary == (
        "The user asked which Llama 2 sizes exist.\nUser said: Hi, I'm Dana and my badge number is 4417."
    )


def test_a_planted_fact_survives_many_rounds_of_a_forgetful_model() -> None:
    summary = ""
    conversation = [
        Message("user", "Remember this: my badge number is 4417."),
        Message("assistant", "Noted."),
    ]
    for i in range(8):
        conversation = [
            *conversation,
            Message("user", f"What is chunk size number {i}?"),
            Message("assistant", "About 500 characters."),
        ]
        folded, conversation = conversation[:2], conversation[2:]
        summary = summarize(summary, folded, FakeModel("The user asked about chunking."))
    assert "my badge number is 4417" in summary


def test_a_prompt_too_large_for_the_window_falls_back() -> None:
    def overflowing(messages: list[Message]) -> str:
        raise PromptError("The prompt (5000 tokens) fills the model's 4096-token window")

    summary = summarize("", BADGE, overflowing)
    assert summary.startswith("User asked: Hi, I'm Dana and my badge number is 4417.")


def test_a_long_summary_is_cut_to_the_word_limit() -> None:
    summary = summarize("", BADGE, FakeModel("Dana badge 4417 Llama 2 sizes " + "filler " * 200), max_words=20)
    assert summary.split("\n")[0].split()[:20] == ("Dana badge 4417 Llama 2 sizes " + "filler " * 14).split()
    assert len(summary.split("\n")[0].split()) <= 21  # the words and an ellipsis


def test_long_turns_are_cut_in_the_summary_prompt() -> None:
    model = FakeModel("Dana (badge 4417) asked about Llama 2.")
    turns = [Message("user", "Dana, badge 4417. " + "x " * 5000), Message("assistant", "y " * 5000)]
    summarize("", turns, model, max_input_chars=1000)
    assert len(model.calls[0][1].content) < 1200


def test_bad_arguments_fail_fast() -> None:
    with pytest.raises(ValueError, match="max_words"):
        summarize("", BADGE, FakeModel("x"), max_words=0)


# -- with the real embedded model ----------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_summarizes(embedded_llm: EmbeddedBackend) -> None:
    summary = summarize("", BADGE, complete_with(embedded_llm, max_tokens=160))
    assert summary.strip()
