"""Every settings option (fashion_cli/options.py SETTINGS_OPTIONS) reaches a nested command: the demo's `index`
step used to get only --model, --backend and --index-dir, so it built the default index and searched another."""

from __future__ import annotations

import argparse

import pytest

import fashion_cli.commands_model
from fashion_cli.main import build_parser, main
from fashion_cli.options import SETTINGS_OPTIONS, add_settings_options, settings_args, settings_from
from fashion_core.settings import load_settings

# A value of each option that is not its default.
NON_DEFAULT = {"model": "/models/mine", "index_backend": "qdrant", "index_dir": "/tmp/elsewhere",
               "index_name": "X", "faiss_index_type": "hnsw", "device": "cpu", "encoder_runtime": "torch"}


def test_every_option_has_a_non_default_value_here() -> None:
    assert {option.field for option in SETTINGS_OPTIONS} == set(NON_DEFAULT)


def test_settings_args_round_trip() -> None:
    settings = load_settings(**NON_DEFAULT)
    parser = argparse.ArgumentParser()
    add_settings_options(parser)
    again = settings_from(parser.parse_args(settings_args(settings)))
    for field in NON_DEFAULT:
        assert getattr(again, field) == getattr(settings, field), field


def test_choices_are_the_settings_literals() -> None:
    choices = {option.field: option.choices for option in SETTINGS_OPTIONS}
    assert choices["faiss_index_type"] == ("flat", "hnsw", "ivf", "auto")
    assert choices["model"] is None and choices["index_name"] is None


def test_demo_hands_every_settings_option_to_its_index_step(tmp_path, monkeypatch) -> None:
    nested: list[list[str]] = []

    def cli(argv: list[str]) -> int:
        nested.append(argv)
        return 3  # stop the demo after its first nested command

    monkeypatch.setattr(fashion_cli.commands_model, "cli", cli)
    flags = [arg for option in SETTINGS_OPTIONS for arg in (option.flag, NON_DEFAULT[option.field])]
    assert main(["demo", "--synthetic", "--n", "3", "--out", str(tmp_path / "demo"), *flags]) == 3
    (argv,) = nested
    assert argv[0] == "index"
    passed = settings_from(build_parser().parse_args(argv))
    for field, value in NON_DEFAULT.items():
        assert str(getattr(passed, field)) == value, field


@pytest.mark.parametrize("field", ["index_name", "faiss_index_type", "encoder_runtime", "device"])
def test_settings_args_names_each_option(field) -> None:
    option = next(o for o in SETTINGS_OPTIONS if o.field == field)
    args = settings_args(load_settings(**{field: NON_DEFAULT[field]}))
    assert args[args.index(option.flag) + 1] == NON_DEFAULT[field]
