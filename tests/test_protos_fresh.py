"""The committed numrep.v1 code is what `make proto` generates from protos/."""

from __future__ import annotations

from numrep import protogen


def test_every_proto_file_has_committed_generated_modules():
    names = {p.stem for p in protogen.proto_files()}
    assert names >= {"common", "flags", "lookup", "publish", "registry", "sync"}
    committed = protogen.OUTPUT_ROOT / protogen.PACKAGE_DIR
    for name in names:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (committed / f"{name}{suffix}").is_file(), f"{name}{suffix} is missing: run `make proto`"


def test_committed_generated_code_matches_the_protos():
    stale = protogen.stale_files()
    assert stale == [], f"generated code is stale, run `make proto`: {', '.join(stale)}"
