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
