"""Arguments checked before the work and answered with one short `error:` line (exit 2), not a traceback:
generate-catalog's --image-size, a Redis URL (one check for --redis-url, FASHION_REDIS_URL and local-stack),
a model folder that is no checkpoint (was a several-KB list of every transformers model type)."""

from __future__ import annotations

import json

import pytest

from fashion_cli.main import main
from fashion_core.errors import ConfigError, InvalidInputError
from fashion_core.settings import check_redis_url, load_settings


@pytest.mark.parametrize(("size", "message"), [
    ("0", "--image-size: 0x0 pixels is an empty image"),
    ("-3", "--image-size: -3x-3 pixels is an empty image"),
    ("100000", "--image-size: 100000x100000 pixels is over the limit"),
])
def test_generate_catalog_image_size(size, message, tmp_path, capsys) -> None:
    out = tmp_path / "catalog"
    assert main(["generate-catalog", str(out), "--n", "3", "--image-size", size]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("url", ["http://foo", "redis://", "foo", "redis://h:99999/0"])
def test_redis_url_is_checked_once_for_every_source(url, monkeypatch, capsys) -> None:
    with pytest.raises(InvalidInputError, match="expected redis://host:port/db"):
        check_redis_url(url)
    with pytest.raises(ConfigError, match=f"^invalid setting redis_url={url!r}: .*expected redis://"):
        load_settings(redis_url=url)
    monkeypatch.setenv("FASHION_REDIS_URL", url)
    with pytest.raises(ConfigError, match=f"^invalid setting FASHION_REDIS_URL={url!r}: "):
        load_settings()
    monkeypatch.delenv("FASHION_REDIS_URL")
    assert main(["status", "some-job", "--redis-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid setting redis_url={url!r}: ") and err.count("\n") == 1


def test_local_stack_uses_the_same_check() -> None:
    from deploy.local.stack import ensure_redis

    with pytest.raises(InvalidInputError, match=r"^--redis-url 'http://foo': expected redis://host:port/db"):
        ensure_redis("http://foo")


def test_good_redis_urls_pass() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://user:pw@cache.example:6380/1", "redis://localhost"):
        assert load_settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(("config", "problem"), [
    (None, "no config.json"),
    ("{", "config.json is not readable JSON"),
    ("[]", "config.json names no model_type"),
    ("{}", "config.json names no model_type"),
    ('{"model_type": "nonexistent"}', "config.json model_type 'nonexistent' is not a model type"),
])
def test_a_folder_that_is_no_checkpoint(config, problem, tmp_path) -> None:
    from fashion_core.model.encoder import load_checkpoint

    # "empty" holds "mpt", a model type: transformers guessed it from the name and listed every type it knows
    folder = tmp_path / "some" / "folder" / "that" / "is" / "empty"
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(config)
    with pytest.raises(InvalidInputError) as raised:
        load_checkpoint(folder)
    assert str(raised.value).startswith(f"{folder}: not a CLIP checkpoint folder ({problem}")
    assert len(str(raised.value)) < 300


def test_cli_names_the_folder_and_what_is_missing(tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "some" / "folder" / "that" / "is" / "not" / "a" / "checkpoint"
    folder.mkdir(parents=True)
    monkeypatch.setenv("FASHION_MODEL", str(folder))
    assert main(["search", "red"]) == 2
    assert capsys.readouterr().err == f"error: {folder}: not a CLIP checkpoint folder (no config.json)\n"


def test_a_real_checkpoint_folder_has_no_problem(tiny_model_dir) -> None:
    from fashion_core.model.encoder import checkpoint_folder_problem

    assert checkpoint_folder_problem(tiny_model_dir) is None
    assert json.loads((tiny_model_dir / "config.json").read_text())["model_type"]
