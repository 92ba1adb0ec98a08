"""Usage page: questions, tokens, speed, declines, errors, feedback and cost over time, from the saved answers.

Session state: `usage_range` (the dates shown), `usage_by` (day or week).
"""

from __future__ import annotations

from datetime import date, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from rag.engine import Engine
from rag.usage import Figures, Row, UsageReport, usage_of, usage_report
from ui_common import require_engine

DEFAULT_DAYS = 30


def metrics(total: Figures, priced: bool) -> None:
    row = st.columns(6)
    row[0].metric("Questions", f"{total.questions:,}")
    row[1].metric("Prompt tokens", f"{total.prompt_tokens:,}")
    row[2].metric("Answer tokens", f"{total.completion_tokens:,}")
    first = "—" if total.ttft_p50 is None else f"{_number(total.ttft_p50)} / {_number(total.ttft_p95)} s"
    row[3].metric("First token, p50 / p95", first)  # short: a metric's value is cut at its column's width
    speed = f"{_number(total.tokens_per_second_p50)} / {_number(total.tokens_per_second_p95)}"
    row[4].metric("Tokens/s, p50 / p95", speed)
    row[5].metric("Cost", "—" if total.cost is None else f"{total.cost:,.4f}", help=None if priced else NO_PRICES)
    row = st.columns(6)
    row[0].metric("Answered by a model", f"{total.answered:,}")
    row[1].metric("Declined", f"{total.declined:,}", help="Nothing relevant in the documents: no model was asked.")
    row[2].metric("Errors", f"{total.errors:,}", help="Answers that failed or were stopped part-way (kept, marked).")
    row[3].metric("Retries", f"{total.retries:,}", help="Model requests tried again after a transient failure.")
    row[4].metric("Thumbs up", f"{total.feedback_up:,}")
    row[5].metric("Thumbs down", f"{total.feedback_down:,}")


NO_PRICES = "Set prices per model on the Settings page (OpenAI-compatible backends) to see the cost."


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def period_frame(report: UsageReport) -> pd.DataFrame:
    return pd.DataFrame([{"period": pd.Timestamp(row.label), **vars(row.figures)} for row in report.periods])


def charts(report: UsageReport) -> None:
    frame = period_frame(report)
    # A period is its first day (a week: its Monday), bucketed by rag/usage.py.
    x = alt.X("period:T", title=report.granularity, timeUnit="yearmonthdate")
    by_channel = pd.DataFrame(
        [
            {"period": pd.Timestamp(label), "channel": channel, "questions": count}
            for label, channel, count in report.by_period_and_channel
        ]
    )
    left, right = st.columns(2)
    with left:
        st.caption("Questions, by where they were asked")
        if by_channel.empty:
            st.info("No questions in this range.")
        else:
            st.altair_chart(
                alt.Chart(by_channel).mark_bar().encode(x, y="questions:Q", color="channel:N"),
                width="stretch",
            )
    with right:
        st.caption("Tokens")
        tokens = frame.melt("period", ["prompt_tokens", "completion_tokens"], "kind", "tokens")
        tokens["kind"] = tokens["kind"].map({"prompt_tokens": "prompt", "completion_tokens": "answer"})
        st.altair_chart(
            alt.Chart(tokens).mark_bar().encode(x, y=alt.Y("tokens:Q", title="tokens"), color="kind:N"),
            width="stretch",
        )
    left, right = st.columns(2)
    with left:
        st.caption("Time to first token (seconds)")
        ttft = frame.melt("period", ["ttft_p50", "ttft_p95"], "percentile", "seconds").dropna()
        ttft["percentile"] = ttft["percentile"].str.removeprefix("ttft_")
        st.altair_chart(
            alt.Chart(ttft).mark_line(point=True).encode(x, y="seconds:Q", color="percentile:N"),
            width="stretch",
        )
    with right:
        st.caption("Generation speed (tokens/s)")
        speed = frame.melt(
            "period", ["tokens_per_second_p50", "tokens_per_second_p95"], "percentile", "tokens per second"
        ).dropna()
        speed["percentile"] = speed["percentile"].str.removeprefix("tokens_per_second_")
        st.altair_chart(
            alt.Chart(speed).mark_line(point=True).encode(x, y="tokens per second:Q", color="percentile:N"),
            width="stretch",
        )
    left, right = st.columns(2)
    with left:
        st.caption("Declined, errors, retries")
        outcomes = frame.melt("period", ["declined", "errors", "retries"], "outcome", "count")
        st.altair_chart(
            alt.Chart(outcomes).mark_line(point=True).encode(x, y="count:Q", color="outcome:N"),
            width="stretch",
        )
    with right:
        st.caption("Feedback")
        feedback = frame.melt("period", ["feedback_up", "feedback_down"], "feedback", "answers")
        feedback["feedback"] = feedback["feedback"].map({"feedback_up": "thumbs up", "feedback_down": "thumbs down"})
        st.altair_chart(
            alt.Chart(feedback).mark_bar().encode(x, y="answers:Q", color="feedback:N"),
            width="stretch",
        )
    if report.priced:
        st.caption("Cost (OpenAI-compatible backends with a price)")
        st.altair_chart(
            alt.Chart(frame.fillna({"cost": 0.0})).mark_bar().encode(x, y=alt.Y("cost:Q", title="cost")),
            width="stretch",
        )


def groups(title: str, rows: list[Row], priced: bool) -> None:
    st.caption(title)
    st.dataframe(
        [
            {
                title: row.label,
                "questions": row.figures.questions,
                "declined": row.figures.declined,
                "errors": row.figures.errors,
                "prompt tokens": row.figures.prompt_tokens,
                "answer tokens": row.figures.completion_tokens,
                "first token p50 (s)": row.figures.ttft_p50,
                "tokens/s p50": row.figures.tokens_per_second_p50,
                **({"cost": row.figures.cost} if priced else {}),
            }
            for row in rows
        ],
        hide_index=True,
    )


def documents(report: UsageReport) -> None:
    left, right = st.columns(2)
    with left:
        st.caption("Documents cited most")
        cited = [{"document": name, "answers citing it": n} for name, n in report.cited_most[:20]]
        st.dataframe(cited, hide_index=True)
    with right:
        st.caption(f"Documents never cited in this range ({len(report.never_cited)})")
        st.dataframe([{"document": name} for name in report.never_cited], hide_index=True)


def date_range() -> tuple[date, date]:
    today = date.today()
    picked = st.date_input(
        "Dates",
        value=(today - timedelta(days=DEFAULT_DAYS - 1), today),
        max_value=today,
        key="usage_range",
        help="Both days included, in this computer's time zone.",
    )
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    if isinstance(picked, tuple) and len(picked) == 1:  # the second day not chosen yet
        return picked[0], picked[0]
    return picked, picked  # type: ignore[return-value]


def show(engine: Engine) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    with left:
        start, end = date_range()
    with right:
        by = st.radio("Per", ["day", "week"], horizontal=True, key="usage_by")
    report = usage_report(usage_of(engine), start, end, "week" if by == "week" else "day", engine.settings.prices)
    metrics(report.total, report.priced)
    charts(report)
    left, middle, right = st.columns(3)
    with left:
        groups("backend · model", report.by_model, report.priced)
    with middle:
        groups("knowledge base", report.by_knowledge_base, report.priced)
    with right:
        groups("channel", report.by_channel, report.priced)
    documents(report)
    left, right = st.columns(2)
    left.download_button(
        f"Download per {report.granularity} (CSV)",
        report.periods_csv(),
        file_name=f"usage-per-{report.granularity}-{start}-{end}.csv",
        mime="text/csv",
    )
    right.download_button(
        "Download every answer (CSV)",
        report.turns_csv(),
        file_name=f"usage-answers-{start}-{end}.csv",
        mime="text/csv",
    )


engine = require_engine()
st.title("Usage")
st.caption(
    "Every answer is saved with its tokens, times and sources: here they are added up, whichever way the question "
    "was asked (this app, the command line, the HTTP API). `python -m rag usage` prints the same."
)
show(engine)
