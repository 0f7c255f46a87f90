"""The committed gRPC stubs are exactly what proto/generate.py produces from the .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_not_stale(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.generate(tmp_path)
    assert fresh, "no stubs generated"
    committed = ROOT / "proto" / "fashionsearch" / "v1"
    fresh_names = {p.name for p in fresh}
    committed_names = {p.name for p in committed.glob("*_pb2*.py*")}
    assert fresh_names == committed_names, "stub files differ: run `python proto/generate.py`"
    for path in fresh:
        assert path.read_bytes() == (committed / path.name).read_bytes(), (
            f"{path.name} is stale: run `python proto/generate.py` and commit the result")
