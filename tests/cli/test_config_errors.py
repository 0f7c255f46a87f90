"""A bad setting (FASHION_* variable, FASHION_CONFIG file, explicit value) is a ConfigError naming the setting and
what is wrong: in the CLI one `error:` line and exit code 2, like a missing config file, never a traceback."""

from __future__ import annotations

import pytest

from fashion_cli.main import main
from fashion_core.errors import ConfigError, InvalidInputError
from fashion_core.settings import Settings, load_settings


@pytest.mark.parametrize(("env", "message"), [
    ({"FASHION_FUSION_DEPTH": "abc"}, "FASHION_FUSION_DEPTH='abc': Input should be a valid integer"),
    ({"FASHION_FUSION_DEPTH": "5000"}, "FASHION_FUSION_DEPTH='5000': Input should be less than or equal to 1000"),
    ({"FASHION_SEARCH_MODE": "fuzzy"}, "FASHION_SEARCH_MODE='fuzzy': Input should be 'dense', 'lexical' or 'hybrid'"),
    ({"FASHION_FUSION_COVERAGE_POWER": "inf"}, "FASHION_FUSION_COVERAGE_POWER='inf': Input should be a finite number"),
    ({"FASHION_FUSION_LEXICAL_WEIGHT": "Infinity"},
     "FASHION_FUSION_LEXICAL_WEIGHT='Infinity': Input should be a finite number"),
])
def test_bad_env_value_names_the_variable(env, message, monkeypatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"invalid setting {message}")
    assert isinstance(raised.value, InvalidInputError) and "errors.pydantic.dev" not in str(raised.value)


def test_bad_explicit_and_file_values(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting fusion_depth=0: Input should be greater than 0$"):
        Settings(fusion_depth=0)
    config = tmp_path / "c.toml"
    config.write_text('search_mode = "fuzzy"\n')
    monkeypatch.setenv("FASHION_CONFIG", str(config))
    with pytest.raises(ConfigError, match=rf"search_mode='fuzzy' \(in FASHION_CONFIG file {config}\)"):
        load_settings()


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.toml", "index_name = [\n", "not a valid TOML table of settings: Invalid value"),
    ("bad.yaml", "a: [\n", "not a valid YAML table of settings"),
    ("list.yaml", "- 1\n- 2\n", "not a valid YAML table of settings"),
    ("binary.toml", b"\xff\xfe", "not a valid TOML table of settings: 'utf-8' codec can't decode"),
])
def test_malformed_config_file(name, text, message, tmp_path, monkeypatch) -> None:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("FASHION_CONFIG", str(path))
    with pytest.raises(ConfigError, match=f"^FASHION_CONFIG={path}: {message}"):
        load_settings()


@pytest.mark.parametrize(("env", "message"), [
    ({"FASHION_FUSION_DEPTH": "abc"}, "error: invalid setting FASHION_FUSION_DEPTH='abc': Input should be a valid "
                                      "integer, unable to parse string as an integer\n"),
    ({"FASHION_SEARCH_MODE": "fuzzy"}, "error: invalid setting FASHION_SEARCH_MODE='fuzzy': Input should be "
                                       "'dense', 'lexical' or 'hybrid'\n"),
    ({"FASHION_CONFIG": "{tmp}/bad.toml"}, "error: FASHION_CONFIG={tmp}/bad.toml: not a valid TOML table of "
                                           "settings: Invalid value (at end of document)\n"),
    ({"FASHION_CONFIG": "{tmp}/missing.toml"}, "error: FASHION_CONFIG={tmp}/missing.toml: no such file\n"),
])
def test_cli_prints_one_error_line_and_exits_2(env, message, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "bad.toml").write_text("index_name = [\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    assert main(["search", "red"]) == 2
    assert capsys.readouterr().err == message.format(tmp=tmp_path)
