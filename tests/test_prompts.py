"""The Llama 2 rendering is compared byte-for-byte with Hugging Face's Llama-2-chat chat_template."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rag.backends.base import estimate_tokens
from rag.errors import PromptError
from rag.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    NO_SOURCES_NOTE,
    SUMMARY_HEADING,
    TRUNCATION_NOTE,
    build_system_block,
    is_llama2_chat,
    plan_prompt,
    render_llama2,
    strip_bos,
)
from rag.schema import Chunk, Message, RetrievedChunk

# tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf (and -13b, -70b), verbatim.
HF_LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)


def _raise(message: str) -> None:
    raise TemplateError(message)


_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_env.globals["raise_exception"] = _raise
_template = _env.from_string(HF_LLAMA2_CHAT_TEMPLATE)


def hf_render(messages: list[Message]) -> str:
    return _template.render(
        messages=[{"role": m.role, "content": m.content} for m in messages], bos_token="<s>", eos_token="</s>"
    )


# Contents with the awkward parts: surrounding spaces and newlines, unicode, brackets of the format itself.
texts = st.lists(
    st.sampled_from([*"abc xyz\n\t\r\u00a0.,?![]<>/", "é", "你", "🙂", "<s>", "</s>", "[INST]", "<<SYS>>", "  "]),
    max_size=30,
).map("".join)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message("system", draw(texts)))
    exchanges = draw(st.integers(min_value=0, max_value=5))
    for _ in range(exchanges):
        messages.append(Message("user", draw(texts)))
        messages.append(Message("assistant", draw(texts)))
    if draw(st.booleans()) or exchanges == 0:
        messages.append(Message("user", draw(texts)))
    return messages


@settings(max_examples=500, deadline=None)
@given(conversations())
def test_render_matches_hf_chat_template(messages: list[Message]) -> None:
    assert render_llama2(messages) == hf_render(messages)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (  # system + one question: the system block lives inside the first [INST]
            [Message("system", "Be brief."), Message("user", " Hi there ")],
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi there [/INST]",
        ),
        ([Message("user", "  Hello  ")], "<s>[INST] Hello [/INST]"),
        (
            [
                Message("system", "S"),
                Message("user", "u1"),
                Message("assistant", " a1 "),
                Message("user", "u2"),
            ],
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nu1 [/INST] a1 </s><s>[INST] u2 [/INST]",
        ),
    ],
    ids=["system-and-question", "single-turn", "multi-turn"],
)
def test_render_known_cases(messages: list[Message], expected: str) -> None:
    assert render_llama2(messages) == expected == hf_render(messages)


def test_system_only_is_rejected_like_an_empty_reference_render() -> None:
    # Meta's reference fails on it and the HF template renders nothing: there is nothing to answer.
    assert hf_render([Message("system", "S")]) == ""
    with pytest.raises(PromptError, match="at least one user message"):
        render_llama2([Message("system", "S")])


def test_roles_out_of_order_are_rejected_like_the_template() -> None:
    bad = [Message("user", "a"), Message("user", "b")]
    with pytest.raises(TemplateError):
        hf_render(bad)
    with pytest.raises(PromptError, match="alternate"):
        render_llama2(bad)


def test_strip_bos_removes_only_the_leading_bos() -> None:
    text = render_llama2([Message("user", "a"), Message("assistant", "b"), Message("user", "c")])
    assert strip_bos(text) == "[INST] a [/INST] b </s><s>[INST] c [/INST]"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama2", True),
        ("llama2:13b", True),
        ("llama2:7b-chat-q4_K_M", True),
        ("llama2:7b-text", False),
        ("llama-2-7b-chat.Q4_K_M.gguf", True),
        ("llama3", False),
        ("mistral", False),
        ("codellama", False),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", False),
    ],
)
def test_llama2_family_detection(name: str, expected: bool) -> None:
    assert is_llama2_chat(name) is expected


def _hit(text: str, source: str = "doc.md", page: int | None = None, score: float = 0.5) -> RetrievedChunk:
    return RetrievedChunk(Chunk(f"{source}:{text[:5]}", "d", text, source, page, 0), score)


def test_sources_are_numbered_with_file_and_page_in_the_system_block() -> None:
    block = build_system_block("Rules.", [_hit("alpha", "a.pdf", 3), _hit("beta", "b.md")])
    assert block == "Rules.\n\nSources:\n\n[1] a.pdf, page 3\nalpha\n\n[2] b.md\nbeta"


def test_no_sources_says_so() -> None:
    assert build_system_block(DEFAULT_SYSTEM_PROMPT, []).endswith(NO_SOURCES_NOTE)


def count_words(messages: Sequence[Message]) -> int:
    # A stand-in tokenizer for the planner's arithmetic: one token per whitespace-separated word.
    return sum(len(m.content.split()) + 4 for m in messages)


def test_plan_keeps_everything_when_it_fits() -> None:
    history = [Message("user", "q1"), Message("assistant", "a1")]
    plan = plan_prompt(
        system_prompt="rules",
        question="q2",
        history=history,
        sources=[_hit("x y z")],
        count_tokens=count_words,
        budget=1000,
    )
    assert [m.role for m in plan.messages] == ["system", "user", "assistant", "user"]
    assert len(plan.sources) == 1 and plan.history_dropped == 0
    assert plan.prompt_tokens == count_words(plan.messages) <= 1000


def test_plan_drops_lowest_ranked_sources_then_oldest_history() -> None:
    sources = [_hit(" ".join(["w"] * 30), source=f"s{i}.md") for i in range(5)]
    history = [Message("user" if i % 2 == 0 else "assistant", " ".join(["h"] * 20)) for i in range(6)]
    plan = plan_prompt(
        system_prompt="rules",
        question="what now",
        history=history,
        sources=sources,
        count_tokens=count_words,
        budget=120,
    )
    assert plan.prompt_tokens <= 120
    assert [s.chunk.source for s in plan.sources] == [s.chunk.source for s in sources[: len(plan.sources)]]
    assert 1 <= len(plan.sources) < 5
    assert plan.history_used >= 2  # the last exchange is kept for follow-ups
    assert plan.messages[-1] == Message("user", "what now")
    assert plan.messages[-3:-1] == history[-2:]


def test_plan_cuts_a_huge_single_source_instead_of_dropping_everything() -> None:
    plan = plan_prompt(
        system_prompt="rules",
        question="q",
        history=[],
        sources=[_hit(" ".join(["w"] * 500))],
        count_tokens=count_words,
        budget=100,
    )
    assert len(plan.sources) == 1
    assert plan.sources[0].chunk.text.endswith(TRUNCATION_NOTE)
    assert plan.prompt_tokens <= 100


def test_plan_cuts_an_oversized_question_with_a_visible_note() -> None:
    plan = plan_prompt(
        system_prompt="rules",
        question=" ".join(["word"] * 1000),
        history=[],
        sources=[],
        count_tokens=count_words,
        budget=200,
    )
    assert plan.question_truncated
    assert plan.messages[-1].content.endswith(TRUNCATION_NOTE)
    assert plan.prompt_tokens <= 200


def llama2_tokens(messages: Sequence[Message]) -> int:
    # The estimate the Ollama backend uses, on the real Llama 2 rendering.
    return estimate_tokens(render_llama2(messages))


words = st.lists(
    st.sampled_from(["alpha", "beta", "gamma", "délta", "4096", "tokens", "[1]", "\n", "  "]), max_size=3000
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    question=words.filter(lambda q: q.strip()),
    sources=st.lists(words, max_size=10),
    history=st.lists(words, max_size=24),
    summary=words,
    window=st.sampled_from([1024, 2048, 4096]),
)
def test_plan_never_exceeds_the_window_and_always_keeps_system_and_question(
    question: str, sources: list[str], history: list[str], summary: str, window: int
) -> None:
    # Messages up to ~20k characters: several times the window for the small ones.
    reserve = 256
    turns = [Message("user" if i % 2 == 0 else "assistant", text) for i, text in enumerate(history)]
    plan = plan_prompt(
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        question=question,
        history=turns,
        sources=[_hit(text, source=f"s{i}.md") for i, text in enumerate(sources)],
        count_tokens=llama2_tokens,
        budget=window - reserve,
        summary=summary,
    )
    assert plan.prompt_tokens == llama2_tokens(plan.messages) <= window - reserve
    assert plan.messages[0].role == "system" and plan.messages[0].content.startswith(DEFAULT_SYSTEM_PROMPT)
    if plan.question_truncated:
        assert plan.messages[-1].content.endswith(TRUNCATION_NOTE)
    else:
        assert plan.messages[-1] == Message("user", question.strip())
    assert sum(plan.spent.values()) == plan.prompt_tokens
    assert all(v >= 0 for v in plan.spent.values())
    assert render_llama2(plan.messages) == hf_render(plan.messages)  # still valid Llama 2, byte for byte


def test_the_summary_sits_in_the_system_block_before_the_sources() -> None:
    plan = plan_prompt(
        system_prompt="rules",
        question="and now?",
        history=[],
        sources=[_hit("x y z", "a.md")],
        count_tokens=count_words,
        budget=1000,
        summary="The user's badge number is 4417.",
    )
    system = plan.messages[0].content
    assert system.index(SUMMARY_HEADING) < system.index("[1] a.md")
    assert "The user's badge number is 4417." in system
    assert plan.summary == "The user's badge number is 4417." and plan.spent["summary"] > 0


def test_an_oversized_summary_is_cut_with_a_note() -> None:
    plan = plan_prompt(
        system_prompt="rules",
        question="q",
        history=[],
        sources=[],
        count_tokens=count_words,
        budget=120,
        summary=" ".join(["fact"] * 1000),
    )
    assert plan.summary.endswith(TRUNCATION_NOTE) and plan.prompt_tokens <= 120
