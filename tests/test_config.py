from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis.strategies import SearchStrategy

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


def test_real_urls_stay_valid() -> None:
    for url in ("http://127.0.0.1:11434", "https://gpu-box:8000/v1", "http://[::1]:11434", "http://u:p@host:80/a?b=1"):
        assert Settings.from_env({"OLLAMA_HOST": url}).ollama_host == url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_BACKEND": "gpt"}, "Unknown backend 'gpt': use one of auto, ollama, embedded"),
        ({"RAG_TOP_K": "many"}, "RAG_TOP_K='many' is not a whole number"),
        ({"RAG_TOP_K": "0"}, "top-k 0 must be between 1 and 50"),
        ({"RAG_CHUNK_OVERLAP": "600"}, "less than half the chunk size"),
        ({"RAG_GGUF_PATH": "/models/llama.bin"}, "not a .gguf file"),
        ({"RAG_MAX_ANSWER_TOKENS": "4000"}, "half the context window"),
        # Markdown in a URL setting: it would be a link or an image wherever the URL is shown.
        ({"OLLAMA_HOST": "http://[x](http://attacker.example)"}, "is not an http"),
        ({"OLLAMA_HOST": "http://host/![p](http://attacker.example/p.png)"}, "is not an http"),
        ({"RAG_OPENAI_BASE_URL": "http://gpu-box:8000/v1<img src=x>"}, "is not an http"),
        ({"RAG_PARSE_SECONDS": "0"}, "RAG_PARSE_SECONDS=0 must be between 1 and 86,400"),
        ({"RAG_PARSE_MEMORY_MB": "100"}, "RAG_PARSE_MEMORY_MB=100 must be between 256 and 1,048,576"),
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


# -- types and bounds, wherever a value comes from (issue 11) -----------------------------------------


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ('{"top_k": "12"}', "setting top_k must be a whole number, not '12' (text)"),
        ('{"top_k": 12.5}', "setting top_k must be a whole number, not 12.5 (a number)"),
        ('{"top_k": true}', "setting top_k must be a whole number, not True (true/false)"),
        ('{"temperature": "hot"}', "setting temperature must be a number, not 'hot' (text)"),
        ('{"temperature": NaN}', "setting temperature must be a number, not nan"),
        ('{"model": ["llama2"]}', "setting model must be text, not ['llama2'] (a list)"),
        ('{"gguf_path": 3}', "setting gguf_path must be a file path (text), not 3"),
        ('{"context_window": 4096000}', "Context window 4096000 is too large: use at most 131,072 tokens"),
    ],
)
def test_a_saved_value_of_the_wrong_type_or_too_large_names_the_setting_and_the_file(
    tmp_path: Path, saved: str, message: str
) -> None:
    from rag.config import settings_file

    settings_file(tmp_path).write_text(saved)
    with pytest.raises(SettingsError) as caught:
        Settings.load({"RAG_DATA_DIR": str(tmp_path)})
    assert str(caught.value).startswith(str(settings_file(tmp_path)))
    assert message in str(caught.value)
    assert "delete the file" in str(caught.value)


def test_a_whole_number_is_accepted_for_a_decimal_setting(tmp_path: Path) -> None:
    from rag.config import settings_file

    settings_file(tmp_path).write_text('{"temperature": 1, "min_score": 0}')
    s = Settings.load({"RAG_DATA_DIR": str(tmp_path)})
    assert s.temperature == 1.0 and type(s.temperature) is float and type(s.min_score) is float


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_TOP_K": "12.5"}, "RAG_TOP_K='12.5' is not a whole number"),
        ({"RAG_CONTEXT_WINDOW": "1000000"}, "Context window 1000000 is too large"),
        ({"RAG_TEMPERATURE": "nan"}, "Setting temperature must be a number, not nan"),
        ({"RAG_REQUEST_TIMEOUT": "inf"}, "Setting request_timeout must be a number, not inf"),
        ({"RAG_REQUEST_TIMEOUT": "0"}, "Request timeout 0.0 must be between 1 and 3600 seconds"),
        ({"RAG_MAX_PAGES": "0"}, "RAG_MAX_PAGES=0 must be between 1 and 100,000"),
        ({"RAG_MAX_UPLOAD_MB": "10000000"}, "RAG_MAX_UPLOAD_MB=10000000 must be between 1 and 102,400"),
        ({"RAG_MAX_CHUNKS": "lots"}, "RAG_MAX_CHUNKS='lots' is not a whole number"),
    ],
)
def test_environment_values_are_typed_and_bounded(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_limits_come_from_the_environment_with_defaults() -> None:
    s = Settings.from_env({})
    assert (s.max_pages_per_file, s.max_chunks_per_file, s.max_upload_files, s.max_upload_mb) == (
        2000,
        20000,
        500,
        1024,
    )
    s = Settings.from_env(
        {"RAG_MAX_PAGES": "50", "RAG_MAX_CHUNKS": "100", "RAG_MAX_UPLOAD_FILES": "3", "RAG_MAX_UPLOAD_MB": "5"}
    )
    assert (s.max_pages_per_file, s.max_chunks_per_file, s.max_upload_files, s.max_upload_mb) == (50, 100, 3, 5)


def test_a_value_set_from_a_page_is_type_checked() -> None:
    with pytest.raises(SettingsError, match="Setting top_k must be a whole number, not '12' \\(text\\)"):
        Settings().with_overrides(top_k="12")


def test_settings_are_saved_through_a_unique_synced_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from rag.config import save_settings

    synced: list[int] = []
    renamed: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        renamed.append((str(a), str(b)))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = save_settings(Settings(data_dir=tmp_path).with_overrides(top_k=4))
    assert synced  # the data reached the disk before the rename
    ((tmp, target),) = renamed
    assert Path(tmp).parent == tmp_path and Path(tmp).name != "settings.tmp" and target == str(path)
    assert not [p for p in tmp_path.iterdir() if p != path]  # nothing left behind
    assert Settings.load({"RAG_DATA_DIR": str(tmp_path)}).top_k == 4


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from rag.config import save_settings

    path = save_settings(Settings(data_dir=tmp_path).with_overrides(top_k=4))
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        save_settings(Settings(data_dir=tmp_path).with_overrides(top_k=9))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["settings.json"]


# Every name a message may use for a setting: its field, its variable, or the words the messages use.
_SETTING_WORDS = [
    "top-k", "Context window", "Max answer tokens", "Temperature", "Context size", "Chunk size", "Chunk overlap",
    "history strategy", "Minimum score", "system prompt", "backend", "model name", "Ollama host", "OpenAI base URL",
    "Chroma URL", "Chroma collection", "TOKEN", ".gguf", "setting",
]  # fmt: skip


def _json_values() -> SearchStrategy[object]:
    from hypothesis import strategies as st

    scalars = (
        st.none() | st.booleans() | st.integers() | st.integers(-10, 200_000)
        | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
        | st.sampled_from(["", " ", "12", "auto", "drop", "http://127.0.0.1:11434", "m.gguf", "~nobody_here/x.gguf"])
    )  # fmt: skip
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    )


def test_any_settings_file_loads_or_fails_with_a_message_naming_a_setting(tmp_path: Path) -> None:
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from rag.config import EDITABLE, settings_file

    keys = st.sampled_from([*EDITABLE, "data_dir", "unknown"])
    files: SearchStrategy[object] = st.dictionaries(keys, _json_values(), max_size=4) | _json_values()

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(content=files)
    def check(content: object) -> None:
        text = json.dumps(content)  # NaN and Infinity too, as Python's json writes and reads them
        settings_file(tmp_path).write_text(text, encoding="utf-8")
        try:
            Settings.load({"RAG_DATA_DIR": str(tmp_path)})
        except SettingsError as exc:
            message = str(exc)
            assert message.startswith(str(settings_file(tmp_path))), message
            if isinstance(content, dict) and any(k in EDITABLE for k in content):
                assert any(w.lower() in message.lower() for w in _SETTING_WORDS), message

    check()


def test_any_environment_value_loads_or_fails_with_a_message_naming_it() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from rag.config import ENV_VARS

    @settings(max_examples=300, deadline=None)
    @given(
        var=st.sampled_from(sorted(ENV_VARS)), raw=st.text(max_size=20) | st.integers().map(str) | st.floats().map(str)
    )
    def check(var: str, raw: str) -> None:
        try:
            Settings.from_env({var: raw})
        except SettingsError as exc:
            message = str(exc)
            assert var in message or any(w.lower() in message.lower() for w in _SETTING_WORDS), message

    check()


# -- one declaration a setting: the environment, settings.json, messages and the page all follow it ------


def test_log_level_comes_from_its_variable_and_is_checked() -> None:
    assert Settings.from_env({}).log_level == "WARNING"
    assert Settings.from_env({"RAG_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"RAG_LOG_LEVEL": "verbose"})
    message = str(caught.value)
    assert message.startswith("Unknown log level 'verbose': use one of DEBUG, INFO, WARNING, ERROR")
    assert "RAG_LOG_LEVEL" in message and '"Log level" on the Settings page' in message


def test_log_level_is_saved_in_and_read_from_the_settings_file(tmp_path: Path) -> None:
    import json

    from rag.config import EDITABLE, read_saved, save_settings

    assert "log_level" in EDITABLE
    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_LOG_LEVEL": "INFO"}
    assert Settings.load(env).log_level == "INFO"
    path = save_settings(Settings.load(env).with_overrides(log_level="ERROR"), env)
    assert json.loads(path.read_text(encoding="utf-8")) == {"log_level": "ERROR"}
    assert read_saved(path) == {"log_level": "ERROR"}
    assert Settings.load(env).log_level == "ERROR"  # saved on the page: wins over the environment


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ('{"log_level": "LOUD"}', "Unknown log level 'LOUD': use one of DEBUG, INFO, WARNING, ERROR"),
        ('{"log_level": 10}', "setting log_level must be one of DEBUG, INFO, WARNING, ERROR, not 10 (a whole number)"),
    ],
)
def test_a_bad_log_level_in_the_file_names_the_file_and_the_setting(tmp_path: Path, saved: str, message: str) -> None:
    from rag.config import settings_file

    settings_file(tmp_path).write_text(saved)
    with pytest.raises(SettingsError) as caught:
        Settings.load({"RAG_DATA_DIR": str(tmp_path)})
    assert str(caught.value).startswith(str(settings_file(tmp_path))) and message in str(caught.value)


def test_every_declared_variable_sets_its_field_as_its_type() -> None:
    from rag.config import ENV_VARS, FIELDS

    for var, name in ENV_VARS.items():
        spec = FIELDS[name]
        text: str
        expected: object
        if spec.kind in ("int", "float"):
            expected = spec.le if spec.le is not None else spec.ge  # the upper bound fits the other defaults
            text = str(expected)
        elif spec.kind == "path":
            text, expected = "~/x.gguf", Path("~/x.gguf").expanduser()
        elif spec.kind == "choice":
            text, expected = spec.choices[-1].lower(), spec.choices[-1]
        elif spec.kind == "bool":
            text, expected = ("no", False) if spec.default else ("yes", True)
        elif name == "model_prices":
            text, expected = "gpt-4o-mini=0.15/0.6", "gpt-4o-mini=0.15/0.6"
        else:
            text, expected = ("kb.example:1234", "http://kb.example:1234") if spec.url else ("abc-1", "abc-1")
        value = getattr(Settings.from_env({var: text}), name)
        assert value == expected != spec.default and type(value) is type(expected), (var, value)


def test_switches_read_the_usual_words_and_refuse_others() -> None:
    for text, expected in (("1", True), ("TRUE", True), ("on", True), ("yes", True), ("0", False), ("Off", False)):
        assert Settings.from_env({"RAG_API_LOOPBACK_WITHOUT_KEY": text}).api_loopback_without_key is expected
    with pytest.raises(SettingsError, match=r"RAG_API_BESIDE_APP='maybe' is not 1, true, yes or on; 0, false"):
        Settings.from_env({"RAG_API_BESIDE_APP": "maybe"})


def test_prices_per_model_are_read_and_a_wrong_one_says_how_to_write_it(tmp_path: Path) -> None:
    from rag.config import ModelPrice, settings_file

    settings = Settings.from_env({"RAG_MODEL_PRICES": " gpt-4o-mini = 0.15/0.60 , meta/llama-3-70b=.59/0.79,"})
    assert settings.prices == {
        "gpt-4o-mini": ModelPrice(0.15, 0.6),
        "meta/llama-3-70b": ModelPrice(0.59, 0.79),
    }
    assert Settings().prices == {}
    with pytest.raises(SettingsError, match=r"'gpt-4o-mini=0.15' is not MODEL=PROMPT/ANSWER .*RAG_MODEL_PRICES"):
        Settings.from_env({"RAG_MODEL_PRICES": "gpt-4o-mini=0.15"})
    settings_file(tmp_path).write_text('{"model_prices": "x=1/2", "api_beside_app": "yes"}')
    with pytest.raises(SettingsError, match="api_beside_app must be true or false"):
        Settings.load({"RAG_DATA_DIR": str(tmp_path)})


def test_every_bound_is_checked_with_a_message_naming_the_setting() -> None:
    from rag.config import ENV_VARS, FIELDS

    bounded = [(var, FIELDS[name]) for var, name in ENV_VARS.items() if FIELDS[name].le is not None]
    assert len(bounded) >= 10
    for var, spec in bounded:
        assert spec.le is not None
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({var: str(spec.le * 10 + 1)})
        assert (spec.says or var) in str(caught.value), str(caught.value)
