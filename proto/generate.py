"""Regenerates the Python stubs of proto/fashionsearch/v1/*.proto in place (messages, gRPC, type stubs).

    python proto/generate.py            # write into proto/
    python proto/generate.py OUT_DIR    # write elsewhere (the staleness test compares the two)
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "fashionsearch/v1"


def generate(out_dir: Path = PROTO_ROOT) -> list[Path]:
    from grpc_tools import protoc

    sources = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *(str(s.relative_to(PROTO_ROOT)) for s in sources)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (out_dir / "fashionsearch", out_dir / PACKAGE):
        (package / "__init__.py").touch()
    return sorted((out_dir / PACKAGE).glob("*_pb2*.py*"))


if __name__ == "__main__":
    written = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
    print("\n".join(str(p) for p in written))
