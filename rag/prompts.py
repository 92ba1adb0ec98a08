"""Prompts as data: the system prompt, the numbered sources block, the Llama 2 chat format, the token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.errors import PromptError
from rag.schema import Message, RetrievedChunk

DEFAULT_SYSTEM_PROMPT = """\
You are a careful assistant that answers questions using the user's documents.
Use only the numbered sources below. After each statement, cite the sources it comes from by number in \
square brackets, like [1] or [2][3]. Do not cite a source that does not support the statement.
If the sources do not contain the answer, say plainly that the documents do not say, and do not guess.
Answer concisely, in the language of the question."""

NO_SOURCES_NOTE = (
    "No passage of the user's documents matched this question. Tell the user that their documents do "
    "not cover it, and do not cite any source."
)

TRUNCATION_NOTE = " […cut to fit the context window]"

# Meta's reference format (llama/generation.py); the Hugging Face chat_template is equivalent.
BOS, EOS = "<s>", "</s>"
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


def source_label(index: int, hit: RetrievedChunk) -> str:
    """ "[1] title · file · heading · page 3" (the chunk's header, once), or "[1] file, page 3"."""
    if hit.chunk.header:
        return f"[{index}] {hit.chunk.header}"
    page = f", page {hit.chunk.page}" if hit.chunk.page is not None else ""
    return f"[{index}] {hit.chunk.source}{page}"


SUMMARY_HEADING = "Earlier in this conversation (summary):"


def build_system_block(system_prompt: str, sources: Sequence[RetrievedChunk], summary: str = "") -> str:
    """The system prompt, the running summary of older turns if any, then the retrieved passages,
    numbered as they are to be cited."""
    parts = [system_prompt.strip()]
    if summary.strip():
        parts.append(f"{SUMMARY_HEADING}\n{summary.strip()}")
    if sources:
        passages = "\n\n".join(f"{source_label(i, hit)}\n{hit.chunk.text}" for i, hit in enumerate(sources, 1))
        parts.append(f"Sources:\n\n{passages}")
    else:
        parts.append(NO_SOURCES_NOTE)
    return "\n\n".join(parts)


def is_llama2_chat(model: str) -> bool:
    """Ollama names (llama2, llama2:13b-chat-q4_K_M) and GGUF file names (llama-2-7b-chat.Q4_K_M.gguf)."""
    name = model.lower().rsplit("/", 1)[-1]
    base, _, tag = name.partition(":")
    if base in {"llama2", "llama-2", "llama2-chat", "llama-2-chat"}:
        return "text" not in tag  # llama2:7b-text is the base model, with no chat format
    return name.startswith(("llama-2-", "llama2-")) and "chat" in name


def render_llama2(messages: Sequence[Message]) -> str:
    """Render a conversation byte-for-byte as Meta's Llama 2 chat format, with the leading BOS as text.

    An optional system message comes first; then user and assistant alternate, starting with the user.
    A conversation ending with the user leaves the model to answer after `[/INST]`.
    """
    turns = list(messages)
    system: str | None = None
    if turns and turns[0].role == "system":
        system = turns[0].content
        turns = turns[1:]
    if not turns:
        raise PromptError("A Llama 2 prompt needs at least one user message after the system message.")
    out: list[str] = []
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            raise PromptError(
                f"Message {i + 1} is from {message.role!r}, expected {expected!r}: "
                "after the system message, turns must alternate user/assistant starting with the user."
            )
        content = message.content
        if i == 0 and system is not None:
            content = B_SYS + system + E_SYS + content
        if message.role == "user":
            out.append(f"{BOS}{B_INST} {content.strip()} {E_INST}")
        else:
            out.append(f" {content.strip()} {EOS}")
    return "".join(out)


def strip_bos(prompt: str) -> str:
    """Runtimes (Ollama's runner, llama.cpp) add the BOS token themselves: never send a second one."""
    return prompt[len(BOS) :] if prompt.startswith(BOS) else prompt


@dataclass(frozen=True)
class PromptPlan:
    """What goes to the model, and what had to be left out to fit the window."""

    messages: list[Message]
    sources: list[RetrievedChunk]  # the sources actually in the prompt, numbered 1..n as cited
    history_used: int  # messages of history kept
    history_dropped: int
    prompt_tokens: int  # as counted by the backend's tokenizer or estimate
    budget: int  # tokens available for the prompt (window minus the answer's reserve)
    question_truncated: bool = False
    summary: str = ""  # the running summary as it is in the prompt
    spent: dict[str, int] = field(default_factory=dict)  # tokens by part: system, summary, context, history, question


def plan_prompt(
    *,
    system_prompt: str,
    question: str,
    history: Sequence[Message],
    sources: Sequence[RetrievedChunk],
    count_tokens: Callable[[Sequence[Message]], int],
    budget: int,
    summary: str = "",
) -> PromptPlan:
    """Fit the prompt into `budget` tokens.

    Priority: the system prompt and the question (whole, unless the question alone overflows: then cut
    with a visible note); then the last exchange (follow-ups need it); then the running summary of older
    turns (cut if it alone is too large); then the retrieved sources in rank order (the best one cut to
    fit if it alone is too large); then older history, newest first.
    """
    turns = _whole_exchanges(history)
    kept_summary = ""

    def messages(n_sources: int, n_turns: int, q: str, srcs: Sequence[RetrievedChunk]) -> list[Message]:
        kept_history = [m for pair in turns[len(turns) - n_turns :] for m in pair] if n_turns else []
        system = Message("system", build_system_block(system_prompt, srcs[:n_sources], kept_summary))
        return [system, *kept_history, Message("user", q)]

    def fits(n_sources: int, n_turns: int, q: str, srcs: Sequence[RetrievedChunk]) -> bool:
        return count_tokens(messages(n_sources, n_turns, q, srcs)) <= budget

    q = question.strip()
    truncated = False
    if not fits(0, 0, q, []):
        q = _cut_to_fit(q, lambda text: fits(0, 0, text + TRUNCATION_NOTE, []))
        if not q:
            raise PromptError(
                "The system prompt alone does not fit the context window: shorten it or raise the context window."
            )
        q += TRUNCATION_NOTE
        truncated = True

    n_turns = 1 if turns and fits(0, 1, q, []) else 0
    if summary.strip():
        kept_summary = summary.strip()
        if not fits(0, n_turns, q, []):
            whole = kept_summary

            def summary_fits(text: str) -> bool:
                nonlocal kept_summary
                kept_summary = text + TRUNCATION_NOTE
                return fits(0, n_turns, q, [])

            cut = _cut_to_fit(whole, summary_fits)
            kept_summary = cut + TRUNCATION_NOTE if cut else ""
    kept_sources: list[RetrievedChunk] = []
    for hit in sources:
        if not fits(len(kept_sources) + 1, n_turns, q, [*kept_sources, hit]):
            break
        kept_sources.append(hit)
    if not kept_sources and sources:
        best = sources[0]

        def best_fits(text: str) -> bool:
            return fits(1, n_turns, q, [_with_text(best, text + TRUNCATION_NOTE)])

        text = _cut_to_fit(best.chunk.text, best_fits)
        if text:
            kept_sources = [_with_text(best, text + TRUNCATION_NOTE)]
    while n_turns < len(turns) and fits(len(kept_sources), n_turns + 1, q, kept_sources):
        n_turns += 1

    final = messages(len(kept_sources), n_turns, q, kept_sources)
    used = 2 * n_turns
    total = count_tokens(final)
    # How the window was spent, by adding one part at a time (the parts add up to the total).
    question_only = count_tokens([Message("user", q)])
    summary_text, kept_summary = kept_summary, ""
    with_rules = count_tokens(messages(0, 0, q, []))
    kept_summary = summary_text
    with_summary = count_tokens(messages(0, 0, q, []))
    with_sources = count_tokens(messages(len(kept_sources), 0, q, kept_sources))
    context = with_sources - with_summary
    spent = {
        # Without sources the system block carries a "no sources" note instead: a tiny source can be
        # shorter than that note, and the difference is the system's, not negative context.
        "system": with_rules - question_only + min(0, context),
        "summary": with_summary - with_rules,
        "context": max(0, context),
        "history": total - with_sources,
        "question": question_only,
    }
    return PromptPlan(
        messages=final,
        sources=kept_sources,
        history_used=used,
        history_dropped=len(history) - used,
        prompt_tokens=total,
        budget=budget,
        question_truncated=truncated,
        summary=kept_summary,
        spent=spent,
    )


def _whole_exchanges(history: Sequence[Message]) -> list[tuple[Message, Message]]:
    """(user, assistant) pairs; unpaired or out-of-order messages are skipped so the format stays valid."""
    pairs: list[tuple[Message, Message]] = []
    i = 0
    while i + 1 < len(history):
        if history[i].role == "user" and history[i + 1].role == "assistant":
            pairs.append((history[i], history[i + 1]))
            i += 2
        else:
            i += 1
    return pairs


def _cut_to_fit(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix of `text` (binary search on characters) that fits."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip()


def _with_text(hit: RetrievedChunk, text: str) -> RetrievedChunk:
    from dataclasses import replace

    return RetrievedChunk(chunk=replace(hit.chunk, text=text), score=hit.score)
