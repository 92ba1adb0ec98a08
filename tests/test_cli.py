"""The command line as a user runs it: separate processes, a data folder of their own, no Ollama."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest

from rag.cli.questions import CLI_STOPPED
from rag.config import DEFAULT_KB, PROJECT_ROOT
from rag.conversations import ConversationStore, SavedSource, SavedUsage
from rag.prompts import render_llama2
from rag.schema import Message
from tests.fake_ollama import FakeOllama
from tests.servers import ServerProcess, free_port


def run(args: list[str], data_dir: Path, stdin_text: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        **({"input": stdin_text} if stdin_text is not None else {"stdin": subprocess.DEVNULL}),
    )


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    (folder / "pets.md").write_text("# Pets\n\nOur office cat is called Miso and she likes tuna.\n")
    (folder / "travel.txt").write_text("The team offsite will be in Lisbon in May.\n")
    (folder / "empty.txt").write_text("")
    data = tmp_path_factory.mktemp("data")
    result = run(["ingest", str(folder)], data, RAG_CORPUS_DIR=str(folder / "none"))
    assert result.returncode == 1  # one file failed
    assert "pets.md: 1 chunk added" in result.stdout
    assert "travel.txt: 1 chunk added" in result.stdout
    assert "empty.txt is empty: there is nothing to index" in result.stderr
    return data


@pytest.mark.slow
def test_ingest_again_skips_unchanged_files(kb: Path, tmp_path: Path) -> None:
    again = run(["ingest", str(PROJECT_ROOT / "tests" / "nowhere")], kb)
    assert again.returncode == 1 and "no such file or folder" in again.stderr
    docs = run(["docs"], kb)
    assert docs.returncode == 0
    assert "pets.md" in docs.stdout and "travel.txt" in docs.stdout and "2 documents, 2 chunks" in docs.stdout


@pytest.mark.slow
def test_prompt_with_a_follow_up_needs_no_model(kb: Path, tmp_path: Path) -> None:
    """A follow-up would be rewritten by the model in the app; `prompt` asks no model (Ollama is down)."""
    history = tmp_path / "history.json"
    turns = [
        {"role": "user", "content": "Tell me about the office cat."},
        {"role": "assistant", "content": "Miso [1]."},
    ]
    history.write_text(json.dumps(turns))
    result = run(["prompt", "What does she like?", "--backend", "ollama", "--history", str(history)], kb)
    assert result.returncode == 0, result.stderr
    assert "no model was asked" in result.stderr and "searched for" not in result.stderr
    assert result.stdout.endswith("[INST] What does she like? [/INST]")


@pytest.mark.slow
def test_prompt_prints_the_exact_llama2_prompt_without_a_server(kb: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(
        json.dumps(
            [
                {"role": "user", "content": "Where is the offsite?"},
                {"role": "assistant", "content": "In Lisbon [1]."},
            ]
        )
    )
    result = run(["prompt", "What is the cat called?", "--backend", "ollama", "--history", str(history)], kb)
    assert result.returncode == 0, result.stderr
    prompt = result.stdout
    assert prompt.startswith("[INST] <<SYS>>\n")
    assert "[1] pets.md\n# Pets\n\nOur office cat is called Miso" in prompt
    assert prompt.endswith(" [/INST] In Lisbon [1]. </s><s>[INST] What is the cat called? [/INST]")
    system = prompt[len("[INST] <<SYS>>\n") : prompt.index("\n<</SYS>>")]
    expected = render_llama2(
        [
            Message("system", system),
            Message("user", "Where is the offsite?"),
            Message("assistant", "In Lisbon [1]."),
            Message("user", "What is the cat called?"),
        ]
    )
    assert "<s>" + prompt == expected
    assert "backend: ollama, model: llama2" in result.stderr


@pytest.mark.slow
def test_ask_json_with_the_built_in_model(kb: Path) -> None:
    result = run(["ask", "What is the office cat called?", "--json"], kb)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"answer", "sources", "usage", "backend", "model", "searched_documents", "conversation"}
    assert sorted(out["searched_documents"]) == ["pets.md", "travel.txt"]  # no --doc: every document
    assert out["answer"].strip()
    assert out["backend"] == "embedded" and out["model"] == "SmolLM2-135M-Instruct"
    assert out["sources"][0]["source"] == "pets.md" and "Miso" in out["sources"][0]["text"]
    assert set(out["sources"][0]) == {"source", "page", "score", "text"}
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] > 0
    assert "Ollama is not reachable" in result.stderr  # auto says why it fell back
    saved = json.loads(run(["conversations", "export", out["conversation"][:8], "--format", "json"], kb).stdout)
    question, answer = saved["messages"]  # a plain `ask` is saved too, as a turn asked from the command line
    assert saved["knowledge_base"] == DEFAULT_KB  # the export says which knowledge base it searched
    assert question["content"] == "What is the office cat called?"
    assert question["channel"] == answer["channel"] == "cli"
    assert answer["content"] == out["answer"] and answer["sources"][0]["source"] == "pets.md"


@pytest.mark.slow
def test_ask_streams_and_lists_sources(kb: Path) -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        result = run(["ask", "Where is the offsite?"], kb, OLLAMA_HOST=server.host)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Llama 2 uses a 4096-token context [1].")  # what the fake server streamed
    assert "Sources:\n  [1] travel.txt (score" in result.stdout
    assert server.requests[-1][0] == "/api/generate"


@pytest.mark.slow
def test_ask_about_something_the_documents_lack_says_so_without_a_model(kb: Path) -> None:
    result = run(["ask", "Who won the Super Bowl in 2016?"], kb)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("I could not find anything about this in your documents.")
    assert "Sources: none matched" in result.stdout
    assert "[no model asked: nothing in the knowledge base is relevant]" in result.stderr
    assert "None prompt tokens" not in result.stderr


@pytest.mark.slow
def test_ask_with_ollama_down_says_how_to_start_it(kb: Path) -> None:
    result = run(["ask", "Where is the offsite?", "--backend", "ollama"], kb)
    assert result.returncode == 1
    assert "error: Ollama is not running at http://127.0.0.1:" in result.stderr
    assert "ollama serve" in result.stderr


@pytest.mark.slow
def test_delete_by_name_removes_the_document(kb: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha")
    (folder / "b.txt").write_text("beta")
    assert run(["ingest", str(folder)], data).returncode == 0
    deleted = run(["delete", "a.txt"], data)
    assert deleted.returncode == 0 and "Deleted a.txt (1 chunk)" in deleted.stdout
    assert "a.txt" not in run(["docs"], data).stdout
    missing = run(["delete", "a.txt"], data)
    assert missing.returncode == 1 and "No document named 'a.txt'" in missing.stderr


GARDEN = "# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n"
ALLOTMENT = "# Allotment\n\nThe tomatoes at the allotment are watered every Friday by Ben.\n"


@pytest.fixture(scope="module")
def gardens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two documents that both answer "When are the tomatoes watered?"."""
    folder = tmp_path_factory.mktemp("gardens")
    (folder / "garden.md").write_text(GARDEN)
    (folder / "allotment.md").write_text(ALLOTMENT)
    data = tmp_path_factory.mktemp("gardens-data")
    result = run(["ingest", str(folder)], data, RAG_CORPUS_DIR=str(folder / "none"))
    assert result.returncode == 0, result.stderr
    return data


@pytest.mark.slow
def test_ask_doc_limits_the_sources_to_that_document(gardens: Path) -> None:
    everything = run(["prompt", "When are the tomatoes watered?"], gardens)
    assert everything.returncode == 0, everything.stderr
    assert "garden.md" in everything.stdout and "allotment.md" in everything.stdout

    result = run(["ask", "When are the tomatoes watered?", "--doc", "allotment.md", "--json"], gardens)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["searched_documents"] == ["allotment.md"]
    assert out["sources"] and {s["source"] for s in out["sources"]} == {"allotment.md"}
    assert "Friday by Ben" in out["sources"][0]["text"]

    streamed = run(["ask", "When are the tomatoes watered?", "--doc", "allotment.md"], gardens)
    assert streamed.returncode == 0, streamed.stderr
    assert "# searching only: allotment.md" in streamed.stderr
    assert "Sources:\n  [1] allotment.md (score" in streamed.stdout and "garden.md" not in streamed.stdout


@pytest.mark.slow
def test_prompt_doc_takes_an_id_prefix_and_repeats(gardens: Path) -> None:
    docs = {d["name"]: d["doc_id"] for d in json.loads(run(["docs", "--json"], gardens).stdout)}
    garden_prefix = docs["garden.md"][:8]  # as `python -m rag docs` prints it
    one = run(["prompt", "When are the tomatoes watered?", "--doc", garden_prefix], gardens)
    assert one.returncode == 0, one.stderr
    assert "[1] garden.md" in one.stdout and "allotment.md" not in one.stdout
    assert "# searching only: garden.md" in one.stderr
    both = run(["prompt", "When are the tomatoes watered?", "--doc", "garden.md", "--doc", "allotment.md"], gardens)
    assert both.returncode == 0, both.stderr
    assert "garden.md" in both.stdout and "allotment.md" in both.stdout
    assert "# searching only: garden.md, allotment.md" in both.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["ask", "prompt"])
def test_an_unknown_doc_exits_1_and_says_how_to_see_the_names(gardens: Path, command: str) -> None:
    result = run([command, "When are the tomatoes watered?", "--doc", "greenhouse.pdf"], gardens)
    assert result.returncode == 1
    assert "No document named 'greenhouse.pdf': see `python -m rag docs` for names and ids." in result.stderr
    assert result.stdout == ""


def conversation_id(stderr: str) -> str:
    return stderr.split("# conversation ", 1)[1].split()[0]


@pytest.mark.slow
def test_chat_through_stdin_is_saved_and_can_be_continued_shown_exported_and_deleted(kb: Path) -> None:
    typed = "What is the office cat called?\n\nWhere is the team offsite?\n/quit\nNever asked.\n"
    chat = run(["chat", "--backend", "embedded"], kb, stdin_text=typed)
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.index("you> What is the office cat called?") < chat.stdout.index("[1] pets.md")
    assert chat.stdout.index("you> Where is the team offsite?") < chat.stdout.index("[1] travel.txt")
    assert "Never asked" not in chat.stdout  # /quit ended the conversation
    cid = conversation_id(chat.stderr)

    listed = run(["conversations", "list"], kb)
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(cid[:8])]
    assert row.split()[1] == "4" and row.split()[3] == "search" and row.endswith("What is the office cat called?")

    more = run(["ask", "--conversation", cid[:8], "--backend", "embedded", "--json", "In which month is it?"], kb)
    assert more.returncode == 0, more.stderr
    answer = json.loads(more.stdout)
    assert answer["conversation"] == cid and answer["role"] == "assistant" and answer["seq"] == 6
    assert answer["standalone_query"]  # what the follow-up was searched as, saved with the answer

    shown = run(["conversations", "show", cid[:8]], kb)
    assert shown.returncode == 0
    questions = ["What is the office cat called?", "Where is the team offsite?", "In which month is it?"]
    positions = [shown.stdout.index(f"**You:** {q}") for q in questions]
    assert positions == sorted(positions) and "pets.md" in shown.stdout

    exported = json.loads(run(["conversations", "export", cid[:8], "--format", "json"], kb).stdout)
    assert [m["content"] for m in exported["messages"] if m["role"] == "user"] == questions

    deleted = run(["conversations", "delete", cid[:8]], kb)
    assert deleted.returncode == 0 and "Deleted conversation" in deleted.stdout
    assert cid[:8] not in run(["conversations", "list"], kb).stdout
    gone = run(["ask", "--conversation", cid[:8], "--backend", "embedded", "Anything?"], kb)
    assert gone.returncode == 1 and "was not found" in gone.stderr


@pytest.mark.slow
def test_ctrl_c_during_an_answer_stops_it_and_the_chat_goes_on(kb: Path) -> None:
    """Ctrl-C while the model is still silent, reading the prompt, stops that answer (saved as it stood, marked
    stopped; the model's connection shut, which Ollama takes as its client gone) and the chat takes the next
    question. Before, the interrupt ended the whole chat. (The built-in model stops the same way, through the stop the
    interrupt sets: tests/test_turn.py.)"""
    with FakeOllama(models=["llama2:latest"]) as ollama:
        ollama.mode = "reading-prompt"
        env = {**os.environ, "RAG_DATA_DIR": str(kb), "OLLAMA_HOST": ollama.host, "PYTHONUNBUFFERED": "1"}
        chat = subprocess.Popen(
            [sys.executable, "-m", "rag", "chat", "--backend", "ollama"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As from a terminal: a job a shell starts in the background (CI) ignores Ctrl-C, and so would the chat.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert chat.stdin is not None
            chat.stdin.write("What is the office cat called?\n")
            chat.stdin.flush()
            assert ollama.reading.wait(120)  # the answer is under way: the model reads the prompt
            ollama.mode = "ok"  # for the next question
            chat.send_signal(signal.SIGINT)
            assert ollama.client_gone.wait(60)
            out, err = chat.communicate("Where is the team offsite?\n", timeout=300)
        finally:
            ollama.go_on.set()
            chat.kill()
    assert chat.returncode == 0, err
    assert "# stopped: what had arrived is saved" in err
    assert "you> Where is the team offsite?" in out and "[1] travel.txt" in out
    exported = json.loads(run(["conversations", "export", conversation_id(err)[:8], "--format", "json"], kb).stdout)
    first, second = [m for m in exported["messages"] if m["role"] == "assistant"]
    assert (first["content"], first["error"]) == ("", CLI_STOPPED) and second["content"] and second["error"] is None


@pytest.mark.slow
def test_ctrl_c_during_a_json_answer_prints_it_as_saved_stopped(kb: Path) -> None:
    """A script that interrupts `rag ask --json` still reads what was saved (the question's conversation, the
    answer marked stopped) on standard output, and the exit status says it was interrupted."""
    with FakeOllama(models=["llama2:latest"]) as ollama:
        ollama.mode = "reading-prompt"
        env = {**os.environ, "RAG_DATA_DIR": str(kb), "OLLAMA_HOST": ollama.host, "PYTHONUNBUFFERED": "1"}
        ask = subprocess.Popen(
            [sys.executable, "-m", "rag", "ask", "--json", "--backend", "ollama", "What is the office cat called?"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal (see above)
        )
        try:
            assert ollama.reading.wait(120)
            ask.send_signal(signal.SIGINT)
            out, err = ask.communicate(timeout=300)
        finally:
            ollama.go_on.set()
            ask.kill()
    assert ask.returncode == 130, err
    printed = json.loads(out)
    assert printed["role"] == "assistant" and printed["error"] == CLI_STOPPED and printed["content"] == ""
    exported = json.loads(run(["conversations", "export", printed["conversation"][:8], "--format", "json"], kb).stdout)
    assert [(m["role"], m["error"]) for m in exported["messages"]] == [("user", None), ("assistant", CLI_STOPPED)]


def test_verbose_logs_the_fallback_to_the_built_in_model(kb: Path) -> None:
    quiet = run(["prompt", "Where is the offsite?"], kb)
    loud = run(["--verbose", "prompt", "Where is the offsite?"], kb)
    assert quiet.returncode == loud.returncode == 0
    assert "rag.engine: Ollama is not reachable" in loud.stderr and "falling back to the built-in model" in loud.stderr
    assert "rag.engine" not in quiet.stderr  # the default level (WARNING) keeps the log quiet
    assert loud.stdout == quiet.stdout  # the same prompt


def test_a_name_with_terminal_escapes_is_stored_cleaned_and_printed_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    hostile = "notes\x1b]0;owned\x07\x1b[31m\nred.txt"  # sets the window title, rings the bell, colours, splits a line
    (folder / hostile).write_text("The boiler is serviced every October.\n")
    (folder / "plain.txt").write_text("The roof was repaired in 2021.\n")
    data = tmp_path / "data"
    added = run(["ingest", str(folder)], data, RAG_CORPUS_DIR=str(tmp_path / "none"))
    assert added.returncode == 0, added.stderr
    listed = run(["docs"], data, RAG_CORPUS_DIR=str(tmp_path / "none"))
    for output in (added.stdout + added.stderr, listed.stdout):
        assert not any(ch in output for ch in "\x1b\x07\r"), repr(output)
    rows = [line for line in listed.stdout.splitlines() if line.endswith("+00:00")]
    assert len(rows) == 2  # one line per document: the newline did not split the table
    stored = json.loads(run(["docs", "--json"], data, RAG_CORPUS_DIR=str(tmp_path / "none")).stdout)
    assert sorted(d["name"] for d in stored) == ["notes_]0;owned__[31m_red.txt", "plain.txt"]


@pytest.mark.slow
def test_keys_made_on_the_command_line_open_the_served_api_and_a_revoked_one_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    created = run(["keys", "create", "editor"], data)
    assert created.returncode == 0 and "shown this once" in created.stderr
    key = created.stdout.strip()
    assert key.startswith("rag-") and len(key.splitlines()) == 1
    listed = run(["keys", "list"], data)
    assert "editor" in listed.stdout and key[:12] in listed.stdout and key not in listed.stdout
    assert run(["keys", "create", "editor"], data).stderr.startswith("error: There is already a key named 'editor'")

    port = free_port()
    for name, value in {
        "RAG_DATA_DIR": str(data),
        "RAG_CORPUS_DIR": str(tmp_path / "none"),  # an empty knowledge base: nothing to index first
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nothing listens there: the built-in model answers
    }.items():
        monkeypatch.setenv(name, value)
    command = [sys.executable, "-m", "rag", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/v1/models"
    auth = {"Authorization": f"Bearer {key}"}
    server = ServerProcess(command, url, tmp_path / "serve.log", auth).start()
    try:
        assert httpx.get(url, headers=auth, timeout=30).json()["data"][0]["id"] == "default"
        assert httpx.get(url, timeout=30).status_code == 401  # no key, even from this machine (the default)
        revoked = run(["keys", "revoke", key[:10]], data)
        assert revoked.returncode == 0 and "Revoked editor" in revoked.stdout
        refused = httpx.get(url, headers=auth, timeout=30)
        assert refused.status_code == 401 and "not valid" in refused.json()["error"]["message"]
    finally:
        server.stop()
    assert "HTTP API on http://127.0.0.1:" in server.log.read_text()


def test_usage_prints_the_summary_and_the_csv_of_the_saved_answers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = ConversationStore.in_data_dir(data)
    for channel, backend, model, tokens in (
        ("app", "embedded", "SmolLM2", (300, 40)),
        ("api", "openai", "gpt-4o-mini", (2000, 500)),
        ("cli", "none", "none", (None, None)),  # declined: no model asked
    ):
        cid = store.create()
        store.add_message(cid, "user", "A question?", channel=channel)  # type: ignore[arg-type]
        usage = SavedUsage(backend=backend, model=model, prompt_tokens=tokens[0], completion_tokens=tokens[1])
        store.add_message(cid, "assistant", "An answer [1].", sources=[SavedSource("guide.md", None, 0.7, "x")],
                          usage=usage, channel=channel)  # type: ignore[arg-type]  # fmt: skip
    store.close()
    env = {"RAG_CORPUS_DIR": str(tmp_path / "none"), "RAG_MODEL_PRICES": "gpt-4o-mini=0.15/0.60"}
    today = date.today().isoformat()
    summary = run(["usage"], data, **env)
    assert summary.returncode == 0, summary.stderr
    assert "3 questions (2 answered by a model, 1 declined, 0 failed, 0 retries)" in summary.stdout
    assert "tokens: 2,300 prompt, 540 answer" in summary.stdout
    assert "cost 0.0006" in summary.stdout and "openai · gpt-4o-mini: 1 questions" in summary.stdout
    assert "  app: 1 questions" in summary.stdout and "  guide.md: 3 answers" in summary.stdout
    per_week = run(["usage", "--by", "week", "--from", today, "--to", today, "--csv"], data, **env)
    [row] = list(csv.DictReader(io.StringIO(per_week.stdout)))
    assert (row["questions"], row["prompt_tokens"], row["declined"]) == ("3", "2300", "1")
    answers = list(csv.DictReader(io.StringIO(run(["usage", "--answers-csv"], data, **env).stdout)))
    assert [a["channel"] for a in answers] == ["app", "api", "cli"]
    backwards = run(["usage", "--from", today, "--to", "2020-01-01"], data, **env)
    assert backwards.returncode == 1 and "swap the dates" in backwards.stderr
    assert "is not a day written YYYY-MM-DD" in run(["usage", "--from", "yesterday"], data).stderr


def test_a_source_s_id_opens_it_with_rag_show_and_its_line_that_answers(gardens: Path) -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        result = run(["ask", "When are the tomatoes watered?", "--doc", "garden.md"], gardens, OLLAMA_HOST=server.host)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Sources:\n", 1)[1].splitlines()[0]
    assert "garden.md" in listed and "“The tomatoes in the garden are watered every Tuesday by Ana.”" in listed
    source_id = listed.split("(score ", 1)[1].split(", ", 1)[1].split(")", 1)[0]
    shown = run(["show", source_id, "--question", "When are the tomatoes watered?"], gardens)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("garden.md · Garden")  # the document and its heading path
    assert "The line that answers: The tomatoes in the garden are watered every Tuesday by Ana." in shown.stdout


@pytest.mark.slow
def test_ask_whole_document_says_its_cost_first_then_reads_every_part(gardens: Path) -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        suggested = run(["ask", "List every day the tomatoes are watered", "--doc", "garden.md"], gardens,
                        OLLAMA_HOST=server.host)  # fmt: skip
        whole = run(["ask", "List every day the tomatoes are watered", "--doc", "garden.md", "--whole-document"],
                    gardens, OLLAMA_HOST=server.host)  # fmt: skip
        everything = run(["ask", "Summarize", "--whole-document"], gardens, OLLAMA_HOST=server.host)
    assert suggested.returncode == 0 and "add --whole-document to read every part" in suggested.stderr
    assert whole.returncode == 0, whole.stderr
    assert (
        "# reading the whole document: 1 parts: 1 model calls (1 to read, 0 to combine; up to 1 more to look again "
        "at lines a note leaves out), about"
    ) in whole.stderr
    assert "# part 1 of 1" in whole.stderr
    assert "Read: garden.md" in whole.stdout and "Sources:" not in whole.stdout
    assert everything.returncode == 1 and "Choose the documents to read whole first" in everything.stderr


@pytest.mark.slow
def test_a_conversation_continued_in_the_terminal_reads_its_documents_whole_as_it_was_left(gardens: Path) -> None:
    question = ["ask", "List every day the tomatoes are watered", "--doc", "garden.md", "--whole-document"]
    with FakeOllama(models=["llama2:latest"]) as server:
        first = run([*question, "--conversation", "new"], gardens, OLLAMA_HOST=server.host)
        assert first.returncode == 0, first.stderr
        cid = conversation_id(first.stderr)
        listed = run(["conversations", "list"], gardens).stdout.splitlines()
        [row] = [line for line in listed if line.startswith(cid[:8])]
        assert row.split()[3] == "whole"  # listed as reading its documents whole
        resumed = run(["chat", "--conversation", cid[:8]], gardens, "And on which day?\n", OLLAMA_HOST=server.host)
        plain = "When are the tomatoes in the garden watered?"
        searched = run(["chat", "--conversation", cid[:8], "--no-whole-document"], gardens, plain + "\n",
                       OLLAMA_HOST=server.host)  # fmt: skip
        after = run(["ask", "--conversation", cid[:8], plain], gardens, OLLAMA_HOST=server.host)
    assert resumed.returncode == 0, resumed.stderr
    assert "# reading the chosen documents whole: garden.md (--no-whole-document searches them)" in resumed.stderr
    assert "# reading the whole document: 1 parts" in resumed.stderr and "Read: garden.md" in resumed.stdout
    assert searched.returncode == 0, searched.stderr
    assert "reading the" not in searched.stderr and "Sources:\n  [1] garden.md" in searched.stdout
    assert after.returncode == 0, after.stderr  # --no-whole-document was saved: it searches from now on
    assert "reading the whole document" not in after.stderr and "Sources:" in after.stdout
    shown = run(["conversations", "show", cid[:8]], gardens)
    assert "*Searches only:* garden.md" in shown.stdout
