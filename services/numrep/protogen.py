"""Regenerate the gRPC/protobuf code in ``numrep.v1`` from ``protos/`` (``make proto``).

The generated modules are committed; ``tests/test_protos_fresh.py`` regenerates
them into a temporary directory and fails when the committed copy differs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"
OUTPUT_ROOT = REPO_ROOT / "services"
PACKAGE_DIR = Path("numrep") / "v1"
INIT_TEXT = '"""Generated gRPC/protobuf code for numrep.v1. DO NOT EDIT: run `make proto`."""\n'


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(output_root: Path) -> list[Path]:
    """Write the generated modules under ``output_root/numrep/v1`` and return their paths."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    package = output_root / PACKAGE_DIR
    (package / "__init__.py").write_text(INIT_TEXT)
    return sorted(package.glob("*.py*"))


def stale_files() -> list[str]:
    """Names of generated files whose committed copy differs from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = OUTPUT_ROOT / PACKAGE_DIR
        stale = []
        for path in fresh:
            current = committed / path.name
            if not current.exists() or current.read_bytes() != path.read_bytes():
                stale.append(path.name)
        fresh_names = {p.name for p in fresh}
        stale += [p.name for p in committed.glob("*_pb2*.py*") if p.name not in fresh_names]
        return sorted(stale)


def main() -> int:
    for path in generate(OUTPUT_ROOT):
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
