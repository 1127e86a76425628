"""The embedded store's disk fills up or turns read-only under a running exchange:
writes are refused with UNAVAILABLE and a message that names the problem (never
INTERNAL or UNKNOWN), stored data can still be looked up, and once the disk is
fixed every acknowledged write is there and the database is intact.

Needs root (a size-limited tmpfs, and an ext4 image on a loop device that the
kernel remounts read-only after an error, as a failing volume does)."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import sqlite3
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.server import RunningServer, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.store.sqlite import DB_FILE, SqliteStore
from numrep_client import ExchangeClient, ExchangeError, FlagToSend

from numrep_testkit import public_jwk_text

CLEAR_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _mount_or_skip(*command: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a test volume needs root")
    result = _run(*command)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a test volume here ({' '.join(command)}): {result.stderr.strip()}")


@contextmanager
def _small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    _mount_or_skip("mount", "-t", "tmpfs", "-o", f"size={size}", "numrep-test", str(where))
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


@contextmanager
def _ext4_volume(image: Path, where: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 file system in ``image`` mounted on ``where`` with errors=remount-ro."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    with open(image, "wb") as out:
        out.truncate(size_mb * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    assert made.returncode == 0, made.stderr
    where.mkdir()
    _mount_or_skip("mount", "-o", "loop,errors=remount-ro", str(image), str(where))
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


def _make_read_only_by_an_error(volume: Path) -> None:
    """What the kernel does to a failing ext4 volume: an error, then an emergency
    read-only remount under the open files."""
    source = _run("findmnt", "-no", "SOURCE", str(volume)).stdout.strip()  # /dev/loopN
    trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"this kernel has no {trigger} to make an ext4 volume fail")
    trigger.write_text("1")
    options = _run("findmnt", "-no", "OPTIONS", str(volume)).stdout
    assert options.startswith("ro") or "emergency_ro" in options, f"the volume did not turn read-only: {options}"


def _members(running: RunningServer) -> tuple[Identity, Identity]:
    carrier = generate_identity("carrier-disk", Role.CARRIER, "EdDSA")
    app = generate_identity("app-disk", Role.APP_VENDOR, "EdDSA")
    for member in (carrier, app):
        running.exchange.register_participant(member.participant_id, member.role, "", [public_jwk_text(member)])
    return carrier, app


def _publish(client: ExchangeClient, tokens: list[str]) -> list[str]:
    """The label ids the exchange acknowledged (accepted, or stored by an earlier try)."""
    return [r.id for r in client.publish(tokens) if r.status in (1, 2)]


def _assert_clear_refusal(error: ExchangeError, *words: str) -> None:
    assert error.code in CLEAR_CODES, f"{error.code.name}: {error.details}"
    assert any(word in error.details for word in words), error.details
    assert "nothing was stored" in error.details


def _check_store(data_dir: Path, acknowledged: list[str]) -> None:
    """Every acknowledged label is stored once and counted in its verdict; the file is intact."""
    with sqlite3.connect(data_dir / DB_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store = SqliteStore.in_directory(data_dir)
    try:
        missing = [lid for lid in acknowledged if store.get_label(lid) is None]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged labels lost"
        numbers = {store.get_label(lid).number for lid in acknowledged}  # type: ignore[union-attr]
        for number in numbers:
            ids = [label.id for label in store.evidence(number).labels]
            assert len(ids) == len(set(ids))
            verdict = store.get_verdict(number)
            assert verdict is not None and verdict.label_count == len(ids)
    finally:
        store.close()


def _fill(volume: Path) -> Path:
    """Write a ballast file until the volume has no space left."""
    ballast = volume / "ballast"
    chunk = b"\0" * 65536
    with open(ballast, "wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast


def test_a_full_disk_refuses_writes_clearly_and_loses_nothing(loop_thread: Any, tmp_path: Path) -> None:
    with _small_tmpfs(tmp_path / "volume", "8m") as volume:
        data = volume / "data"
        running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=data)))
        try:
            carrier, app = _members(running)
            numbers = (f"+1212555{n:04d}" for n in itertools.count(1000))
            acknowledged: list[str] = []
            with ExchangeClient(running.address, carrier, timeout=10) as client, \
                    ExchangeClient(running.address, app, timeout=10) as app_client:
                acknowledged += _publish(client, [sign_label(carrier, next(numbers), "fraud", 0.9) for _ in range(20)])
                first_number = "+12125551000"
                assert client.lookup(first_number).label_count == 1
                ballast = _fill(volume)

                refused: ExchangeError | None = None
                pending: list[str] = []
                for _ in range(200):  # SQLite reuses free pages and WAL frames first: write until it needs a new block
                    pending = [sign_label(carrier, next(numbers), "marketing.robocall", 0.8) for _ in range(20)]
                    try:
                        acknowledged += _publish(client, pending)
                    except ExchangeError as exc:
                        refused = exc
                        break
                assert refused is not None, "the full disk never refused a write"
                _assert_clear_refusal(refused, "disk is full")
                with pytest.raises(ExchangeError) as flags_refused:
                    app_client.submit_flags([FlagToSend(next(numbers), "marketing", f"reporter-{n}") for n in range(5)])
                _assert_clear_refusal(flags_refused.value, "disk is full")
                # stored data is still served
                assert client.lookup(first_number).label_count == 1

                ballast.unlink()  # the operator frees space: no restart needed
                acknowledged += _publish(client, pending)  # the refused batch, retried
                acknowledged += _publish(client, [sign_label(carrier, next(numbers), "fraud", 0.9) for _ in range(5)])
                assert app_client.submit_flags([FlagToSend(next(numbers), "marketing", "reporter-x")]).accepted == 1
        finally:
            loop_thread.run(running.stop(0))
        _check_store(data, acknowledged)
        print(f"full disk: {len(acknowledged)} labels acknowledged, all found; refusal: {refused.code.name}: {refused.details}")


def test_a_volume_turning_read_only_refuses_writes_clearly_and_loses_nothing(loop_thread: Any, tmp_path: Path) -> None:
    image, mount_point = tmp_path / "volume.ext4", tmp_path / "volume"
    acknowledged: list[str] = []
    with _ext4_volume(image, mount_point) as volume:
        data = volume / "data"
        running = loop_thread.run(start_server(ServerConfig(listen="127.0.0.1:0", data_dir=data)))
        try:
            carrier, app = _members(running)
            numbers = [f"+1212555{n:04d}" for n in range(2000, 2100)]
            with ExchangeClient(running.address, carrier, timeout=10) as client, \
                    ExchangeClient(running.address, app, timeout=10) as app_client:
                for start in range(0, 60, 20):
                    acknowledged += _publish(client, [sign_label(carrier, n, "fraud", 0.9) for n in numbers[start:start + 20]])
                assert app_client.submit_flags([FlagToSend(numbers[0], "marketing", "reporter-1")]).accepted == 1

                _make_read_only_by_an_error(volume)

                with pytest.raises(ExchangeError) as publish_refused:
                    client.publish([sign_label(carrier, numbers[70], "fraud", 0.9)])
                _assert_clear_refusal(publish_refused.value, "read-only")
                with pytest.raises(ExchangeError) as flags_refused:
                    app_client.submit_flags([FlagToSend(numbers[71], "marketing", "reporter-2")])
                _assert_clear_refusal(flags_refused.value, "read-only")
                # lookups of stored data keep working, on the connections open before and on new ones
                for number in numbers[:60]:
                    assert client.lookup(number).label_count == 1
        finally:
            loop_thread.run(running.stop(0))
    # The operator repairs the volume (fsck) and mounts it again.
    repaired = _run("e2fsck", "-fy", str(image))
    assert repaired.returncode in (0, 1), repaired.stdout + repaired.stderr  # 1: errors corrected
    again = tmp_path / f"again-{uuid.uuid4().hex[:6]}"
    again.mkdir()
    _mount_or_skip("mount", "-o", "loop", str(image), str(again))
    try:
        _check_store(again / "data", acknowledged)
        print(f"read-only volume: {len(acknowledged)} labels acknowledged, all found after fsck; "
              f"refusal: {publish_refused.value.code.name}: {publish_refused.value.details}")
    finally:
        _run("umount", "-l", str(again))
