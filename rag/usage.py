"""Usage over time, from what every answered turn already saves (rag/conversations.py): questions, tokens,
time to first token and tokens/s, declines, errors, retries and feedback, per day or week, by backend and
model, by knowledge base and by channel (app, cli, api); the documents cited most and never; and, where
prices per model are set, what the OpenAI-compatible server charged.

A *turn* is an answer the pipeline produced: an assistant message with a usage record (a declined question's
says backend "none") or an error. Messages a client sent along as earlier history (an API request, `rag ask
--history`) are neither, and are not counted. Days are the local calendar's; weeks start on Monday.

The Usage page and `python -m rag usage` both call `usage_report`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Literal, get_args

from rag.config import ModelPrice
from rag.conversations import ConversationStore, StoredMessage
from rag.engine import Engine, knowledge_base_engines

Granularity = Literal["day", "week"]
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
UNKNOWN_CHANNEL = "unknown"  # answers saved before channels were recorded


@dataclass(frozen=True)
class KnowledgeBaseUsage:
    """What usage reads of one knowledge base: its saved conversations and the names of its documents now."""

    conversations: ConversationStore
    documents: Sequence[str]


@dataclass(frozen=True)
class TurnUsage:
    """One answered turn, as usage counts it."""

    knowledge_base: str
    conversation: str
    seq: int
    at: datetime  # local time of the answer
    channel: str  # app, cli, api; "unknown" before channels were recorded
    backend: str  # "none": declined, no model asked; "" when the answer failed before a model answered
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    time_to_first_token: float | None
    tokens_per_second: float | None
    retries: int
    declined: bool
    failed: bool
    feedback: str | None  # "up", "down" or None
    cited: tuple[str, ...]  # the files of its sources
    cost: float | None  # None: no price for its model (or not an OpenAI-compatible backend)

    @classmethod
    def of(
        cls, knowledge_base: str, conversation: str, message: StoredMessage, prices: Mapping[str, ModelPrice]
    ) -> TurnUsage:
        u = message.usage
        backend, model = (u.backend, u.model) if u is not None else ("", "")
        prompt = u.prompt_tokens if u is not None else None
        completion = u.completion_tokens if u is not None else None
        return cls(
            knowledge_base=knowledge_base,
            conversation=conversation,
            seq=message.seq,
            at=datetime.fromisoformat(message.created_at).astimezone(),
            channel=message.channel or UNKNOWN_CHANNEL,
            backend=backend,
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            time_to_first_token=u.time_to_first_token if u is not None else None,
            tokens_per_second=u.tokens_per_second if u is not None else None,
            retries=(u.retries or 0) if u is not None else 0,
            declined=backend == "none",
            failed=message.error is not None,
            feedback=message.feedback,
            cited=tuple(s.source for s in message.sources or ()),
            cost=_cost(backend, model, prompt, completion, prices),
        )


def _cost(
    backend: str, model: str, prompt: int | None, completion: int | None, prices: Mapping[str, ModelPrice]
) -> float | None:
    price = prices.get(model) if backend == "openai" else None
    if price is None:
        return None
    return ((prompt or 0) * price.prompt + (completion or 0) * price.completion) / 1_000_000


@dataclass(frozen=True)
class Figures:
    """What a set of turns adds up to (a period, a model, a channel, or all of them)."""

    questions: int = 0
    answered: int = 0  # by a model (not declined, not failed)
    declined: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_p50: float | None = None  # seconds to the first token
    ttft_p95: float | None = None
    tokens_per_second_p50: float | None = None
    tokens_per_second_p95: float | None = None
    feedback_up: int = 0
    feedback_down: int = 0
    cost: float | None = None  # None: no turn had a price

    @classmethod
    def of(cls, turns: Sequence[TurnUsage]) -> Figures:
        ttft = [t.time_to_first_token for t in turns if t.time_to_first_token is not None]
        speed = [t.tokens_per_second for t in turns if t.tokens_per_second]
        costs = [t.cost for t in turns if t.cost is not None]
        return cls(
            questions=len(turns),
            answered=sum(not t.declined and not t.failed for t in turns),
            declined=sum(t.declined for t in turns),
            errors=sum(t.failed for t in turns),
            retries=sum(t.retries for t in turns),
            prompt_tokens=sum(t.prompt_tokens or 0 for t in turns),
            completion_tokens=sum(t.completion_tokens or 0 for t in turns),
            ttft_p50=percentile(ttft, 50),
            ttft_p95=percentile(ttft, 95),
            tokens_per_second_p50=percentile(speed, 50),
            tokens_per_second_p95=percentile(speed, 95),
            feedback_up=sum(t.feedback == "up" for t in turns),
            feedback_down=sum(t.feedback == "down" for t in turns),
            cost=round(sum(costs), 6) if costs else None,
        )


@dataclass(frozen=True)
class Row:
    """Figures labelled: a period ("2026-12-07"; a week by its Monday) or a group ("openai · gpt-4o")."""

    label: str
    figures: Figures


@dataclass(frozen=True)
class UsageReport:
    start: date | None
    end: date | None
    granularity: Granularity
    total: Figures
    periods: list[Row]  # oldest first, every day or week of the range (empty ones included)
    by_model: list[Row]  # "backend · model", most questions first
    by_knowledge_base: list[Row]
    by_channel: list[Row]
    by_period_and_channel: list[tuple[str, str, int]]  # (period, channel, questions), for the stacked chart
    cited_most: list[tuple[str, int]]  # (file, answers citing it), most first
    never_cited: list[str]  # documents in the knowledge base now that no answer of the range cited
    turns: list[TurnUsage] = field(repr=False)
    priced: bool  # prices are set for some model

    def periods_csv(self) -> str:
        """One line per period, every figure a column: what the CSV export holds."""
        return _csv([{"period": row.label, **asdict(row.figures)} for row in self.periods])

    def turns_csv(self) -> str:
        """One line per answered turn."""
        rows = []
        for t in self.turns:
            row = {f.name: getattr(t, f.name) for f in fields(t)}
            row["at"] = t.at.isoformat(timespec="seconds")
            row["cited"] = "; ".join(t.cited)
            rows.append(row)
        return _csv(rows, [f.name for f in fields(TurnUsage)])


def usage_of(engine: Engine) -> dict[str, KnowledgeBaseUsage]:
    """What usage reads of each knowledge base of this engine (`rag.engine.knowledge_base_engines`)."""
    return {
        name: KnowledgeBaseUsage(kb.conversations, [d.name for d in kb.documents()])
        for name, kb in knowledge_base_engines(engine).items()
    }


def usage_report(
    knowledge_bases: Mapping[str, KnowledgeBaseUsage],
    start: date | None = None,
    end: date | None = None,
    granularity: Granularity = "day",
    prices: Mapping[str, ModelPrice] | None = None,
) -> UsageReport:
    """Usage of these knowledge bases from `start` to `end` (local days, both included; None: open)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start}): swap the dates")
    turns: list[TurnUsage] = []
    for name, kb in knowledge_bases.items():
        for conversation, message in kb.conversations.answers():
            turn = TurnUsage.of(name, conversation, message, prices or {})
            if (start is None or turn.at.date() >= start) and (end is None or turn.at.date() <= end):
                turns.append(turn)
    turns.sort(key=lambda t: t.at)
    cited = Counter(source for t in turns for source in set(t.cited))
    documents = sorted({d for kb in knowledge_bases.values() for d in kb.documents})
    return UsageReport(
        start=start,
        end=end,
        granularity=granularity,
        total=Figures.of(turns),
        periods=_periods(turns, start, end, granularity),
        by_model=_grouped(turns, _model_label),
        by_knowledge_base=_grouped(turns, lambda t: t.knowledge_base, order=list(knowledge_bases)),
        by_channel=_grouped(turns, lambda t: t.channel),
        by_period_and_channel=_per_period_and_channel(turns, granularity),
        cited_most=sorted(cited.items(), key=lambda item: (-item[1], item[0])),
        never_cited=[d for d in documents if d not in cited],
        turns=turns,
        priced=bool(prices),
    )


def _per_period_and_channel(turns: Iterable[TurnUsage], granularity: Granularity) -> list[tuple[str, str, int]]:
    counts = Counter((period_start(t.at.date(), granularity).isoformat(), t.channel) for t in turns)
    return sorted((period, channel, n) for (period, channel), n in counts.items())


def _model_label(turn: TurnUsage) -> str:
    return f"{turn.backend} · {turn.model}" if turn.backend else "failed before a model answered"


def period_start(day: date, granularity: Granularity) -> date:
    return day - timedelta(days=day.weekday()) if granularity == "week" else day


def _periods(turns: Sequence[TurnUsage], start: date | None, end: date | None, granularity: Granularity) -> list[Row]:
    by_period: dict[date, list[TurnUsage]] = defaultdict(list)
    for t in turns:
        by_period[period_start(t.at.date(), granularity)].append(t)
    if not by_period and (start is None or end is None):
        return []
    first = period_start(start or min(by_period), granularity)
    last = period_start(end or max(by_period), granularity)
    step = timedelta(days=7 if granularity == "week" else 1)
    rows = []
    day = first
    while day <= last:
        rows.append(Row(day.isoformat(), Figures.of(by_period.get(day, []))))
        day += step
    return rows


def _grouped(turns: Iterable[TurnUsage], key: Callable[[TurnUsage], str], order: Sequence[str] = ()) -> list[Row]:
    groups: dict[str, list[TurnUsage]] = {name: [] for name in order}
    for t in turns:
        groups.setdefault(key(t), []).append(t)
    rows = [Row(label, Figures.of(group)) for label, group in groups.items()]
    if order:
        return rows
    return sorted(rows, key=lambda row: (-row.figures.questions, row.label))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linearly interpolated between the closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 3)


def _csv(rows: Sequence[Mapping[str, object]], header: Sequence[str] | None = None) -> str:
    out = io.StringIO()
    names = list(header or (rows[0].keys() if rows else []))
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def format_report(report: UsageReport) -> str:
    """`python -m rag usage`: the same summary as the Usage page, as text."""
    t = report.total
    span = f"{report.start or 'the first answer'} to {report.end or 'today'}"
    lines = [
        f"Usage from {span}: {t.questions} questions ({t.answered} answered by a model, {t.declined} declined, "
        f"{t.errors} failed, {t.retries} retries)",
        f"tokens: {t.prompt_tokens:,} prompt, {t.completion_tokens:,} answer; time to first token p50 "
        f"{_num(t.ttft_p50, ' s')} p95 {_num(t.ttft_p95, ' s')}; tokens/s p50 {_num(t.tokens_per_second_p50)} "
        f"p95 {_num(t.tokens_per_second_p95)}",
        f"feedback: {t.feedback_up} up, {t.feedback_down} down"
        + (f"; cost {_money(t.cost)}" if report.priced else "; cost: no prices set (RAG_MODEL_PRICES)"),
        "",
        f"{'PER ' + report.granularity.upper():<12} {'QUESTIONS':>9} {'DECLINED':>8} {'ERRORS':>6} {'PROMPT TOK':>11} "
        f"{'ANSWER TOK':>10} {'TTFT P50':>8} {'TTFT P95':>8} {'TOK/S P50':>9} {'UP':>4} {'DOWN':>4}"
        + (f" {'COST':>9}" if report.priced else ""),
    ]
    for row in report.periods:
        f = row.figures
        lines.append(
            f"{row.label:<12} {f.questions:>9} {f.declined:>8} {f.errors:>6} {f.prompt_tokens:>11,} "
            f"{f.completion_tokens:>10,} {_num(f.ttft_p50):>8} {_num(f.ttft_p95):>8} "
            f"{_num(f.tokens_per_second_p50):>9} {f.feedback_up:>4} {f.feedback_down:>4}"
            + (f" {_money(f.cost):>9}" if report.priced else "")
        )
    for title, rows in (
        ("backend · model", report.by_model),
        ("knowledge base", report.by_knowledge_base),
        ("channel", report.by_channel),
    ):
        lines += ["", f"By {title}:"]
        for row in rows:
            f = row.figures
            lines.append(
                f"  {row.label}: {f.questions} questions, {f.prompt_tokens:,} + {f.completion_tokens:,} tokens, "
                f"{f.declined} declined, {f.errors} failed"
                + (f", {_money(f.cost)}" if report.priced and f.cost is not None else "")
            )
    lines += ["", "Documents cited most:"]
    lines += [f"  {name}: {count} answers" for name, count in report.cited_most[:10]] or ["  none"]
    lines += ["", f"Documents never cited ({len(report.never_cited)}):"]
    lines += [f"  {name}" for name in report.never_cited] or ["  none: every document was cited"]
    return "\n".join(lines)


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"
