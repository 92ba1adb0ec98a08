"""Follow-up questions: rewrite one that leans on the conversation into a standalone search query.

The model is a plain callable (`Complete`): `rag.backends.base.complete_with(backend)` adapts any
`LLMBackend`, and tests pass a deterministic fake. The prompts are module constants (data).

Deciding whether a question is a follow-up is a transparent heuristic with word lists (no model call), so
a question that names its own subject costs nothing extra. Whatever the model writes is checked, and a
deterministic fallback is used when it is unusable: a small model must never make memory worse than none.
The word analysis here (`names_in`, `SPECIAL_TOKENS`) is shared with the running summary (`rag.summary`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from rag.backends.base import Complete
from rag.formatting import shorten
from rag.schema import Message

logger = logging.getLogger(__name__)

# -- prompts (data) ----------------------------------------------------------------------------------

CONDENSE_SYSTEM = (
    "Rewrite the follow-up as one standalone search query using the conversation; "
    "keep names and numbers; output only the query."
)
CONDENSE_USER_TEMPLATE = "Conversation:\n{history}\n\nFollow-up: {question}\n\nStandalone query:"

ROLE_LABELS = {"user": "User", "assistant": "Assistant"}
MAX_KEY_TERMS = 12

# -- word lists ----------------------------------------------------------------------------------------


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Pronouns and deictics that point back into the conversation when the question itself names nothing.
PRONOUNS = _wordset("it its they them their theirs this that these those he she him her his hers there then")

# Elliptical follow-ups: at the start of the question...
ELLIPTICAL_STARTS = re.compile(
    r"^(?:and|also|plus|or|but|what about|how about|same for|same with|same thing|same question"
    r"|tell me more|show me more|more|continue|go on|keep going|elaborate|expand on|explain more"
    r"|explain further)\b"
)
# ...or anywhere in it.
ELLIPTICAL_ANYWHERE = re.compile(
    r"\b(?:tell me more|say more|in more detail|elaborate|the other one|the other ones"
    r"|the others|the former|the latter|which one|which ones|the first one|the second one|the last one"
    r"|the same one|the same thing|you said|you mentioned|you just said|your (?:last |previous )?answer"
    r"|previous answer|as above|mentioned above)\b"
    r"|\b(?:an?|another|some|any|more) examples?\W*$"
)

# Function words: never a subject, never a key term.
STOPWORDS = _wordset(
    """
    a an the and or but nor so yet also plus of to in on at by for with about from into onto over under
    as than like via per vs versus up down out off again further once
    what which who whom whose when where why how whether if
    is are was were be been being am do does did done doing have has had having
    can could shall should will would may might must need needs
    i me my mine myself we us our ours you your yours
    not no yes any some all each every both either neither few more most less least much many other others
    own same such only just very too quite really please thanks thank hi hello ok okay
    one ones thing things something anything everything way ways lot lots kind sort
    tell say said says show give explain describe list compare define summarize summarise elaborate
    continue go going get got make made let know want like use used using
    else next now also again then there here
    example examples detail details difference
    user assistant"""
)

# "it" followed by one of these, then "to/that/…", is the dummy subject: "is it possible to run …".
DUMMY_IT_NEXT = _wordset(
    """
    possible impossible necessary true false safe ok okay worth better best hard easy difficult important
    likely fine wise advisable required recommended enough normal common usual faster slower cheaper take
    takes took cost costs"""
)
DUMMY_IT_THEN = _wordset("to that whether if when for")
# "that" is a demonstrative (points back) after these words; otherwise it is usually a relative or a
# conjunction ("the model that …", "is it true that …").
THAT_DEICTIC_AFTER = _wordset(
    """
    is was are were does do did about of explain mean means with like by from for on in to than why how
    and or but use try"""
)
# "there" next to a form of "be" is existential ("is there a way to …").
EXISTENTIAL_THERE = _wordset("is are was were be been being isn't aren't exist exists any")
# "this app" and the like refer to the app itself, not to the conversation.
SELF_NOUNS = _wordset("app application tool program chat assistant site page ui interface website")

_TOKEN = re.compile(r"[^\W_](?:[\w'’.\-]*[^\W_])?|[,;:?!()]")
_CLAUSE_BREAK = frozenset({",", ";", ":", "and", "or", "but", "(", ")"})
SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<</?SYS>>")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.replace("’", "'"))


def _base(word: str) -> str:
    """Lowercase, without a contraction or possessive: "It's" → "it", "Llama's" → "llama"."""
    return word.lower().split("'")[0]


def _is_name(word: str, sentence_start: bool) -> bool:
    """A word that names something: has a digit (7B, 4096, Llama-2), is an acronym (RAG), or is capitalized
    mid-sentence and not a function word (Canada, Ollama). A capital at the start of a sentence says nothing."""
    if not word[0].isalnum():
        return False
    if any(ch.isdigit() for ch in word):
        return True
    letters = [ch for ch in word if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return word.lower() not in PRONOUNS
    if word[0].isupper() and not sentence_start:
        return _base(word) not in STOPWORDS and _base(word) not in PRONOUNS
    return False


def names_in(text: str) -> list[str]:
    """The names and numbers in `text`, in order (case kept, without possessive 's)."""
    out: list[str] = []
    sentence_start = True
    for token in _tokens(text):
        if token in {"?", "!"}:
            sentence_start = True
            continue
        if token[0].isalnum():
            if _is_name(token, sentence_start):
                out.append(re.sub(r"'s$", "", token))
            sentence_start = False
    return out


# -- is it a follow-up? ---------------------------------------------------------------------------------


def follow_up_reason(question: str) -> str | None:
    """Why `question` leans on the conversation ("pronoun 'it'", "elliptical 'tell me more'", "short
    question"), or None when it stands alone. Independent of the history: see `needs_rewrite`."""
    tokens = _tokens(question)
    words = [t for t in tokens if t[0].isalnum()]
    if not words:
        return None
    match = ELLIPTICAL_STARTS.match(" ".join(w.lower() for w in words)) or ELLIPTICAL_ANYWHERE.search(
        " ".join(t.lower() for t in tokens)
    )
    if match:
        return f"elliptical {match.group(0).strip(' ?!.,;:')!r}"
    pronoun = _dangling_pronoun(tokens)
    if pronoun:
        return f"pronoun {pronoun!r}"
    if len(words) <= 3 and not _asks_for_definition(words):
        return "short question"
    return None


def needs_rewrite(question: str, history: Sequence[Message]) -> bool:
    """True when `question` cannot be searched on as is: there is a conversation and the question leans on
    it (a pronoun with no antecedent in the question, an elliptical follow-up, or ≤ 3 words)."""
    if not any(m.role in ROLE_LABELS and m.content.strip() for m in history):
        return False
    return follow_up_reason(question) is not None


def _asks_for_definition(words: Sequence[str]) -> bool:
    """ "What is RAG?", "Who is Meta?", "Define quantization": short, yet standalone."""
    first, last = _base(words[0]), _base(words[-1])
    if first not in {"what", "who", "define"} or len(words) < 2:
        return False
    return last not in STOPWORDS and last not in PRONOUNS


def _dangling_pronoun(tokens: Sequence[str]) -> str | None:
    """The first pronoun or deictic in the question that points back into the conversation."""
    words = [(i, t) for i, t in enumerate(tokens) if t[0].isalnum()]
    for n, (i, token) in enumerate(words):
        word = _base(token)
        if word not in PRONOUNS:
            continue
        before = _base(words[n - 1][1]) if n > 0 else ""
        after = [_base(t) for _, t in words[n + 1 : n + 5]]
        contraction = "'" in token
        if word == "it" and after and after[0] in DUMMY_IT_NEXT and DUMMY_IT_THEN & set(after[1:]):
            continue  # "is it possible to …", "how long does it take to …"
        if word == "that" and not contraction and n > 0 and n < len(words) - 1 and before not in THAT_DEICTIC_AFTER:
            continue  # "the model that …", "is it true that …"
        if word == "there" and (
            contraction or before in EXISTENTIAL_THERE or (after and after[0] in EXISTENTIAL_THERE)
        ):
            continue  # "is there a way …", "there are …"
        if word == "then" and 0 < n < len(words) - 1:
            continue  # "install it and then …": only "Then what?" / "what happens then?" point back
        if word == "this" and after and after[0] in SELF_NOUNS:
            continue  # "this app"
        if word == "those" and after and after[0] == "who":
            continue
        if _has_antecedent(tokens, i):
            continue
        return token.lower()
    return None


def _has_antecedent(tokens: Sequence[str], position: int) -> bool:
    """A name earlier in the question, in a previous clause: "What is Llama 2 and what are its sizes?"."""
    seen_name = False
    sentence_start = True
    for token in tokens[:position]:
        if seen_name and token.lower() in _CLAUSE_BREAK:
            return True
        if token in {"?", "!"}:
            sentence_start = True
        elif token[0].isalnum():
            seen_name = seen_name or _is_name(token, sentence_start)
            sentence_start = False
    return False


# -- standalone question ----------------------------------------------------------------------------------


def standalone_question(
    question: str, history: Sequence[Message], complete: Complete, max_history_chars: int = 1500
) -> str:
    """The query to search on: `question` itself (no model call) when it stands alone or there is no
    history; otherwise the model's rewrite from the recent turns, or, when that is unusable, the question
    plus the key terms of the previous question (`fallback_query`)."""
    if not needs_rewrite(question, history):
        return question
    reply = complete(condense_messages(question, history, max_history_chars))
    query = clean_query(reply)
    if usable_query(query, question):
        return query
    fallback = fallback_query(question, history)
    logger.info("follow-up rewrite unusable (%r): searching %r instead", reply[:80], fallback)
    return fallback


def condense_messages(question: str, history: Sequence[Message], max_history_chars: int = 1500) -> list[Message]:
    """The exact messages of the rewrite call: the instruction, then the recent turns and the follow-up."""
    if max_history_chars < 1:
        raise ValueError(f"max_history_chars must be positive, got {max_history_chars}")
    transcript = format_transcript(history, max_history_chars)
    user = CONDENSE_USER_TEMPLATE.format(history=transcript, question=" ".join(question.split()))
    return [Message("system", CONDENSE_SYSTEM), Message("user", user)]


def format_transcript(history: Sequence[Message], max_chars: int) -> str:
    """ "User: …" / "Assistant: …" lines, newest kept, at most `max_chars` in all. Each message is cut to a
    third of the room (keeping its start), so the last exchange always fits whole or in part."""
    turns = [m for m in history if m.role in ROLE_LABELS and m.content.strip()]
    per_message = max(80, max_chars // 3)
    lines: list[str] = []
    used = 0
    for message in reversed(turns):
        label = f"{ROLE_LABELS[message.role]}: "
        room = max_chars - used - (1 if lines else 0)
        if room < len(label) + 20:
            break
        text = shorten(" ".join(message.content.split()), min(per_message, room - len(label)))
        lines.append(label + text)
        used += len(lines[-1]) + (1 if len(lines) > 1 else 0)
    return "\n".join(reversed(lines))


_QUERY_PREFIX = re.compile(
    r"^(?:(?:the\s+)?(?:standalone|rewritten|reformulated|search|new|follow[- ]?up|final)\s+)*"
    r"(?:question|query|search|rewrite|output)\s*[:：]\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`«»"
_ANSWER_OPENINGS = re.compile(
    r"^(?:i\b|i'm\b|sure\b|certainly\b|of course\b|yes\b|no\b|sorry\b|as an ai\b|here is\b|here's\b"
    r"|the answer\b|answer\s*:|you can\b|you should\b|you need\b|user\s*:|assistant\s*:)",
    re.IGNORECASE,
)
_PROMPT_ECHO = re.compile(r"\b(?:follow-?up|standalone|rewrite|conversation\s*:)", re.IGNORECASE)


def clean_query(reply: str) -> str:
    """The query in a model's reply: its first non-empty line, without labels ("Standalone question:",
    "Query:"), markdown, surrounding quotes or trailing punctuation junk."""
    text = SPECIAL_TOKENS.sub("", reply)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if line.startswith("```"):
        return ""  # code is not a query
    for _ in range(3):  # labels and quotes can nest: **Query:** "…"
        before = line
        line = re.sub(r"^(?:#+\s*|[-*•]\s+|\d+[.)]\s+)", "", line)
        line = line.replace("**", "").replace("__", "").strip()
        line = _QUERY_PREFIX.sub("", line).strip()
        line = line.strip(_QUOTES + " ")
        line = re.sub(r"\s*\((?:[^()]*\b(?:query|question|standalone|rewritten)\b[^()]*)\)\s*$", "", line, flags=re.I)
        line = line.rstrip(",;-–— " + _QUOTES)
        if line == before:
            break
    return line


def usable_query(query: str, question: str) -> bool:
    """Is the cleaned reply a search query for this follow-up? Not empty, not much longer than the question,
    not an answer or an echo of the prompt, not the follow-up itself, and keeping its names and numbers."""
    if not query or len(query) > 3 * len(question) + 200:
        return False
    if _ANSWER_OPENINGS.match(query) or "```" in query:
        return False
    if _PROMPT_ECHO.search(query) and not _PROMPT_ECHO.search(question):
        return False
    if query.endswith(":") or re.search(r"[.!?]\s+\S", query):  # introduces a list, or several sentences
        return False
    if _normalized(query) == _normalized(question):
        return False
    lowered = query.lower()
    return all(re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", lowered) for name in names_in(question))


def fallback_query(question: str, history: Sequence[Message]) -> str:
    """`question` plus the key terms of the last user question (and of the ones before it while they were
    follow-ups themselves): deterministic, and better for retrieval than the bare follow-up."""
    terms = key_terms(question, history)
    base = " ".join(question.split())
    return f"{base} {' '.join(terms)}" if terms else base


def key_terms(question: str, history: Sequence[Message]) -> list[str]:
    """The content words of the previous user questions that `question` does not already contain."""
    have = {_base(w) for w in _tokens(question)}
    terms: list[str] = []
    for message in [m for m in history if m.role == "user"][::-1][:3]:
        for token in _tokens(message.content):
            if not token[0].isalnum():
                continue
            word = re.sub(r"'s$", "", token)
            base = _base(word)
            if base in STOPWORDS or base in PRONOUNS or base in have or (len(base) < 2 and not base.isdigit()):
                continue
            have.add(base)
            terms.append(word)
        if follow_up_reason(message.content) is None:
            break  # this question named its subject: older ones are about something else
    return terms[:MAX_KEY_TERMS]


def _normalized(text: str) -> str:
    return " ".join(_base(w) for w in _tokens(text) if w[0].isalnum())
