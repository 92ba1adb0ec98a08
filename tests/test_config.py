from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import DEFAULT_DATA_DIR, Settings
from rag.errors import SettingsError


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s.backend == "auto" and s.model == "llama2" and s.context_window == 4096
    assert s.data_dir == DEFAULT_DATA_DIR and s.ollama_host == "http://127.0.0.1:11434"


def test_environment_variables_are_read_and_typed(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "RAG_DATA_DIR": str(tmp_path),
            "RAG_BACKEND": "Embedded",
            "RAG_MODEL": "llama2:13b",
            "OLLAMA_HOST": "10.0.0.5:11434",
            "RAG_TOP_K": "6",
            "RAG_TEMPERATURE": "0.7",
            "RAG_GGUF_PATH": "~/models/llama-2-7b-chat.Q4_K_M.gguf",
        }
    )
    assert s.data_dir == tmp_path and s.backend == "embedded" and s.model == "llama2:13b"
    assert s.ollama_host == "http://10.0.0.5:11434"
    assert s.top_k == 6 and s.temperature == 0.7
    assert s.gguf_path == Path("~/models/llama-2-7b-chat.Q4_K_M.gguf").expanduser()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_BACKEND": "gpt"}, "Unknown backend 'gpt': use one of auto, ollama, embedded"),
        ({"RAG_TOP_K": "many"}, "RAG_TOP_K='many' is not a whole number"),
        ({"RAG_TOP_K": "0"}, "top-k 0 must be between 1 and 50"),
        ({"RAG_CHUNK_OVERLAP": "600"}, "less than half the chunk size"),
        ({"RAG_GGUF_PATH": "/models/llama.bin"}, "not a .gguf file"),
        ({"RAG_MAX_ANSWER_TOKENS": "4000"}, "half the context window"),
    ],
)
def test_bad_values_get_a_message_that_says_how_to_fix_them(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env(env)


def test_overrides_ignore_none_and_validate() -> None:
    s = Settings().with_overrides(backend=None, model="mistral")
    assert s.backend == "auto" and s.model == "mistral"
    with pytest.raises(SettingsError):
        s.with_overrides(backend="nope")


# -- saved settings (the settings page) --------------------------------------------------------------


def test_saved_settings_round_trip(tmp_path: Path) -> None:
    from rag.config import save_settings, settings_file

    gguf = tmp_path / "llama-2-7b-chat.Q4_K_M.gguf"
    s = Settings(data_dir=tmp_path).with_overrides(
        backend="embedded",
        model="mistral",
        ollama_host="http://10.0.0.5:11434",
        gguf_path=gguf,
        temperature=0.65,
        max_answer_tokens=300,
        context_window=8192,
        top_k=5,
        chunk_size=800,
        chunk_overlap=120,
        min_score=-0.25,
        system_prompt="Réponds en français [1].",
    )
    path = save_settings(s)
    assert path == settings_file(tmp_path) == tmp_path / "settings.json"
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind
    assert Settings.load({"RAG_DATA_DIR": str(tmp_path)}) == s
    assert "Réponds" in path.read_text(encoding="utf-8")  # readable, not \u-escaped


def test_saved_settings_override_the_environment_field_by_field(tmp_path: Path) -> None:
    from rag.config import settings_file

    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_MODEL": "llama2:13b", "RAG_TOP_K": "3"}
    assert Settings.load(env).model == "llama2:13b"  # no file yet: the environment
    settings_file(tmp_path).write_text('{"model": "mistral", "gguf_path": "", "data_dir": "/elsewhere", "x": 1}')
    s = Settings.load(env)
    assert s.model == "mistral"  # the file wins
    assert s.top_k == 3  # not in the file: the environment still applies
    assert s.gguf_path is None  # an empty path means the built-in model
    assert s.data_dir == tmp_path  # only editable fields are read from the file


def test_read_saved_types_the_values(tmp_path: Path) -> None:
    from rag.config import read_saved

    path = tmp_path / "settings.json"
    assert read_saved(path) == {}  # missing: no overrides
    path.write_text('{"gguf_path": "~/models/m.gguf", "top_k": 4}')
    assert read_saved(path) == {"gguf_path": Path("~/models/m.gguf").expanduser(), "top_k": 4}


@pytest.mark.parametrize(
    ("content", "reason"), [("{not json", "Expecting property name"), ("[1, 2]", "not a JSON object")]
)
def test_a_damaged_settings_file_says_how_to_fix_it(tmp_path: Path, content: str, reason: str) -> None:
    from rag.config import settings_file

    path = settings_file(tmp_path)
    path.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.load({"RAG_DATA_DIR": str(tmp_path)})
    message = str(caught.value)
    assert message.startswith(f"{path} is not valid settings (") and reason in message
    assert message.endswith("fix it or delete it to use the defaults.")


def test_a_saved_value_out_of_range_is_reported(tmp_path: Path) -> None:
    from rag.config import settings_file

    settings_file(tmp_path).write_text('{"chunk_size": 600, "chunk_overlap": 400}')
    with pytest.raises(SettingsError, match="Chunk overlap 400 must be at least 0 and less than half the chunk size"):
        Settings.load({"RAG_DATA_DIR": str(tmp_path)})


def test_invalid_changes_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    from rag.config import save_settings

    saved = Settings(data_dir=tmp_path).with_overrides(top_k=4)
    path = save_settings(saved)
    before = path.read_bytes()
    for bad in ({"chunk_overlap": 300}, {"temperature": 2.5}, {"gguf_path": Path("model.bin")}, {"model": " "}):
        with pytest.raises(SettingsError):
            save_settings(saved.with_overrides(**bad))
    assert path.read_bytes() == before
    assert Settings.load({"RAG_DATA_DIR": str(tmp_path)}) == saved


def test_history_strategy_comes_from_the_environment_and_is_validated() -> None:
    assert Settings.from_env({}).history_strategy == "summarize"
    assert Settings.from_env({"RAG_HISTORY": "Drop"}).history_strategy == "drop"
    with pytest.raises(SettingsError, match="Unknown history strategy 'forget': use one of summarize, drop"):
        Settings.from_env({"RAG_HISTORY": "forget"})
