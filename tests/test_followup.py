"""Follow-up rewriting: the heuristic, and the wiring with a deterministic fake model; one run with the real
embedded model (slow)."""

from __future__ import annotations

import pytest

from rag.backends.base import complete_with
from rag.backends.embedded import EmbeddedBackend
from rag.followup import (
    CONDENSE_SYSTEM,
    clean_query,
    fallback_query,
    follow_up_reason,
    needs_rewrite,
    standalone_question,
)
from rag.schema import Message
from tests.fake_model import FakeModel

CANADA = [
    Message("user", "What is the capital of Canada?"),
    Message("assistant", "Ottawa is the capital of Canada."),
]
LLAMA = [
    Message("user", "What sizes does Llama 2 come in?"),
    Message("assistant", "Llama 2 comes in 7B, 13B and 70B parameter sizes."),
]


# -- needs_rewrite ------------------------------------------------------------------------------------

FOLLOW_UPS = [
    "Tell me more about it",
    "Tell me more",
    "more",
    "why?",
    "Why?",
    "and the 70B?",
    "And how much memory does it need?",
    "What about Mistral?",
    "How about the 13B model?",
    "Also, does Ollama support GPUs?",
    "Same for the 13B",
    "the other one",
    "Which one is faster?",
    "Explain",
    "continue",
    "go on",
    "elaborate",
    "Can you elaborate on the second point?",
    "example?",
    "Can you give an example?",
    "Who is he?",
    "What is it?",
    "Is it safe?",
    "Does it need a GPU?",
    "Why did Meta release it?",  # a name, but "it" is not that name
    "Is that true?",
    "What does that mean?",
    "How do they compare?",
    "What are their licenses?",
    "Is this model open source?",
    "Are these quantized?",
    "How many people live there?",
    "What was the population then?",
    "Then what?",
    "You mentioned quantization; how does it work?",
    "What's next?",
    "Are there limits?",  # ≤ 3 words with history
]

STANDALONE = [
    "What is the capital of Canada?",
    "What is RAG?",  # short, but asks for a definition
    "What is quantization?",
    "Define embeddings",
    "How does chunking work in retrieval-augmented generation?",
    "What is the context window of Llama 2?",
    "How big is Llama 2 70B?",
    "Is there a way to run Llama 2 without a GPU?",  # existential "there"
    "Is it possible to run Llama 2 on a CPU?",  # dummy "it"
    "How long does it take to index a 100-page PDF?",
    "How do I upload a PDF to this app?",  # "this app" is the app
    "Which license does the model that Meta released use?",  # relative "that"
    "What is Llama 2 and what are its sizes?",  # "its" has its antecedent in the question
    "If I install Ollama, can I run it offline?",
    "How do I install Ollama and then pull a model?",  # sequential "then"
    "Give me an example of a RAG pipeline",
    "Where can I find the license of Llama 2?",
    "",
]


@pytest.mark.parametrize("question", FOLLOW_UPS)
def test_follow_ups_need_a_rewrite(question: str) -> None:
    assert needs_rewrite(question, CANADA), follow_up_reason(question)


@pytest.mark.parametrize("question", STANDALONE)
def test_standalone_questions_are_used_as_they_are(question: str) -> None:
    assert not needs_rewrite(question, CANADA), follow_up_reason(question)


@pytest.mark.parametrize("question", ["Tell me more about it", "why?", "and the 70B?", "What about it?"])
def test_nothing_to_rewrite_without_history(question: str) -> None:
    assert not needs_rewrite(question, [])
    assert not needs_rewrite(question, [Message("system", "You are helpful.")])
    assert not needs_rewrite(question, [Message("user", "  "), Message("assistant", "")])


def test_the_reason_is_shown() -> None:
    assert follow_up_reason("Tell me more about it") == "elliptical 'tell me more'"
    assert follow_up_reason("Does it need a GPU?") == "pronoun 'it'"
    assert follow_up_reason("Why?") == "short question"
    assert follow_up_reason("What is the capital of Canada?") is None


# -- standalone_question ------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["What is the capital of Canada?", "What is RAG?"])
def test_no_model_call_when_the_question_stands_alone(question: str) -> None:
    model = FakeModel("should not be used")
    assert standalone_question(question, CANADA, model) == question
    assert model.calls == []


def test_no_model_call_without_history() -> None:
    model = FakeModel("should not be used")
    assert standalone_question("Tell me more about it", [], model) == "Tell me more about it"
    assert model.calls == []


def test_the_rewrite_prompt_holds_the_last_turns_and_the_follow_up() -> None:
    model = FakeModel("Ottawa, capital of Canada")
    assert standalone_question("Tell me more about it", CANADA, model) == "Ottawa, capital of Canada"
    assert model.calls == [
        [
            Message("system", CONDENSE_SYSTEM),
            Message(
                "user",
                "Conversation:\n"
                "User: What is the capital of Canada?\n"
                "Assistant: Ottawa is the capital of Canada.\n\n"
                "Follow-up: Tell me more about it\n\n"
                "Standalone query:",
            ),
        ]
    ]


def test_the_rewrite_prompt_keeps_the_newest_turns_within_the_limit() -> None:
    history = [Message("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 60) for i in range(10)] + CANADA
    model = FakeModel("Ottawa, capital of Canada")
    standalone_question("Tell me more about it", history, model, max_history_chars=400)
    prompt = model.calls[0][1].content
    transcript = prompt.split("Conversation:\n", 1)[1].split("\n\nFollow-up:", 1)[0]
    assert len(transcript) <= 400
    assert transcript.endswith("User: What is the capital of Canada?\nAssistant: Ottawa is the capital of Canada.")
    assert "turn 0 " not in transcript
    assert "system" not in [m.role for m in model.calls[0][1:]]


def test_multi_line_messages_are_flattened_in_the_transcript() -> None:
    history = [Message("user", "What is\n\nthe capital   of Canada?"), CANADA[1]]
    model = FakeModel("Ottawa, capital of Canada")
    standalone_question("Tell me more about it", history, model)
    assert "User: What is the capital of Canada?\n" in model.calls[0][1].content


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('Standalone question: "Ottawa capital of Canada"', "Ottawa capital of Canada"),
        ("Ottawa capital of Canada", "Ottawa capital of Canada"),
        ("\n\n  Query: Ottawa capital of Canada  \nThis query asks about…", "Ottawa capital of Canada"),
        ('**Query:** "Ottawa, capital of Canada"', "Ottawa, capital of Canada"),
        ("“Ottawa capital of Canada”", "Ottawa capital of Canada"),
        ("- Ottawa capital of Canada (standalone query)", "Ottawa capital of Canada"),
        ("Search query: `Ottawa capital of Canada`</s>", "Ottawa capital of Canada"),
        ("Standalone query: 'Ottawa capital of Canada',", "Ottawa capital of Canada"),
    ],
)
def test_replies_are_cleaned(reply: str, expected: str) -> None:
    assert clean_query(reply) == expected
    assert standalone_question("Tell me more about it", CANADA, FakeModel(reply)) == expected


FALLBACK = "Tell me more about it capital Canada"


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   \n\n",
        "Ottawa " * 100,  # much longer than 3x the question + 200 characters
        "Sure! Ottawa is the capital of Canada.",  # an answer
        "Ottawa is the capital of Canada. It is in Ontario.",  # several sentences: an answer
        "You can find more about it in the following list:",
        "Tell me more about it",  # the follow-up itself
        "Rewrite the follow-up as a standalone query.",  # the instruction, echoed
        "User: What is the capital of Canada?",  # the transcript, echoed
        "```sql\nSELECT 1\n```",
    ],
)
def test_unusable_replies_fall_back_to_the_follow_up_plus_key_terms(reply: str) -> None:
    assert standalone_question("Tell me more about it", CANADA, FakeModel(reply)) == FALLBACK


def test_a_rewrite_that_drops_a_number_of_the_follow_up_is_not_used() -> None:
    model = FakeModel("Does Llama 2 come in 7B?")
    assert standalone_question("and the 70B?", LLAMA, model) == "and the 70B? sizes Llama 2 come"
    assert standalone_question("and the 70B?", LLAMA, FakeModel("Llama 2 70B size")) == "Llama 2 70B size"


def test_the_fallback_reaches_back_past_follow_ups_for_the_subject() -> None:
    history = [
        *CANADA,
        Message("user", "How many people live there?"),
        Message("assistant", "About a million."),
    ]
    assert fallback_query("Tell me more about it", history) == "Tell me more about it people live capital Canada"
    assert fallback_query("why?", [Message("assistant", "Hello")]) == "why?"


def test_bad_arguments_fail_fast() -> None:
    with pytest.raises(ValueError, match="max_history_chars"):
        standalone_question("Tell me more about it", CANADA, FakeModel("x"), max_history_chars=0)


# -- with the real embedded model ----------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_rewrites_a_follow_up(embedded_llm: EmbeddedBackend) -> None:
    query = standalone_question("Tell me more about it", CANADA, complete_with(embedded_llm, max_tokens=48))
    assert query.strip() and "\n" not in query
    assert query != "Tell me more about it"
