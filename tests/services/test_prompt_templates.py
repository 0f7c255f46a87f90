"""Zero-shot prompt templates are checked once, in fashion_core: a malformed one ({x}, {0}, a lone brace, two
fields, none) is the caller's error, INVALID_ARGUMENT over gRPC and a one-line message with exit code 2 in the CLI,
never a KeyError/ValueError/IndexError answered INTERNAL. Real query server over loopback gRPC."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from fashionsearch.v1 import query_pb2, query_pb2_grpc

from fashion_core.settings import Settings

BAD = ["{} {x}", "{}{", "{}}", "{0}", "{!r}", "{:>9}", "a {} and a {}", "no field", "{{}}", ""]
GOOD = ["{}", "a photo of a {}", "{{literal}} {}"]


@pytest.fixture()
def image(synthetic_catalog) -> str:
    return str(synthetic_catalog / "images" / "10007.jpg")


def test_grpc_classify_answers_a_bad_template_invalid_argument(query_server, channel_to, image, caplog) -> None:
    stub = query_pb2_grpc.QueryServiceStub(channel_to(query_server.address))
    data = Path(image).read_bytes()
    caplog.set_level(logging.INFO)
    for template in BAD:
        with pytest.raises(grpc.RpcError) as err:
            stub.Classify(query_pb2.ClassifyRequest(image=data, labels=["shirt", "jeans"],
                                                    templates=["a photo of a {}", template]), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (template, err.value.details())
        assert f"prompt template {template!r}" in err.value.details()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or "INTERNAL" in r.getMessage()]
    reply = stub.Classify(query_pb2.ClassifyRequest(image=data, labels=["shirt", "jeans"], templates=GOOD),
                          timeout=30)
    assert sorted(s.label for s in reply.scores) == ["jeans", "shirt"]


def _cli(capsys, *args: str) -> tuple[int, str]:
    from fashion_cli.main import main

    capsys.readouterr()
    rc = main(list(args))
    return rc, " ".join(capsys.readouterr().err.split())


def test_cli_classify_and_query_classify_report_a_bad_template(query_server, service_settings: Settings, image,
                                                                capsys) -> None:
    for template, why in (("{} {x}", "exactly one '{}'"), ("{}{", "Single '{' encountered")):
        rc, err = _cli(capsys, "classify", image, "--labels", "shirt,jeans", "--template", template,
                       "--model", str(service_settings.model))
        assert rc == 2 and f"error: prompt template {template!r}" in err and why in err, err
        rc, err = _cli(capsys, "query", "classify", image, "--labels", "shirt,jeans", "--template", template,
                       "--address", query_server.address)
        assert rc == 2 and f"error: prompt template {template!r}" in err and why in err, err
        assert "internal error" not in err
    rc, err = _cli(capsys, "query", "classify", image, "--labels", "shirt,jeans", "--template", "a {} photo",
                   "--address", query_server.address, "--json")
    assert rc == 0, err
