"""A process's identity in the leases it holds: stable across a restart, never shared by two
live processes on one host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bankhub.config import Environment, Settings
from bankhub.jobs import identity

KEY = "Gq7tWm2Zr9vXc4Lp8Hs1Yd6Kf3Nb5Jw0Ue"


def settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(env=Environment.TEST, data_dir=data_dir, secret_key=KEY, **values)


def test_default_identities_take_free_slots_and_a_restart_takes_its_predecessors(
    tmp_path: Path,
) -> None:
    first = identity.claim(settings(tmp_path), "worker")
    second = identity.claim(settings(tmp_path), "worker")
    serving = identity.claim(settings(tmp_path), "serve")
    host, slot, where = first.name.split(":")
    assert (host, slot) == (identity.host_name(), "worker-0")
    assert second.name == f"{host}:worker-1:{where}"
    assert serving.name == f"{host}:serve-0:{where}"
    assert first.owner == f"{first.name}#{first.incarnation}"
    # another data dir: other names, even for the same slot
    elsewhere = identity.claim(settings(tmp_path / "other"), "worker")
    assert elsewhere.name.startswith(f"{host}:worker-0:")
    assert elsewhere.name != first.name

    first.release()  # the process died: the kernel dropped its lock
    restarted = identity.claim(settings(tmp_path), "worker")
    assert restarted.name == first.name
    assert restarted.incarnation != first.incarnation
    assert restarted.held
    for held in (second, serving, elsewhere, restarted):
        held.release()


def test_a_slot_is_free_once_its_process_is_gone(tmp_path: Path) -> None:
    """The lock lives as long as the process: a child that claimed a slot and was killed
    leaves it to the next process."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from bankhub.config import Environment, Settings\n"
        "from bankhub.jobs import identity\n"
        f"me = identity.claim(Settings(env=Environment.TEST, data_dir=Path({str(tmp_path)!r}), "
        f"secret_key={KEY!r}), 'worker')\n"
        "print(me.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == -9, child.stderr
    mine = identity.claim(settings(tmp_path), "worker")
    try:
        assert mine.name == child.stdout.strip()
    finally:
        mine.release()


def test_a_named_identity_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    named = settings(tmp_path, worker_id="pod-7.worker")
    me = identity.claim(named, "worker")
    try:
        assert me.name == "pod-7.worker"
        with pytest.raises(identity.IdentityTaken, match=f"pid {os.getpid()}"):
            identity.claim(named, "worker")
    finally:
        me.release()
    identity.claim(named, "worker").release()


@pytest.mark.parametrize("name", ["", "a/b", "a#b", "a b", "x" * 41, "a%b"])
def test_a_worker_id_that_could_not_be_told_apart_in_a_lease_is_refused(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(ValidationError, match="worker_id"):
        settings(tmp_path, worker_id=name)


def test_an_ephemeral_identity_proves_nothing(tmp_path: Path) -> None:
    once = identity.Identity.ephemeral()
    assert not once.held
    assert once.name.endswith(f":{os.getpid()}")


def test_a_data_dir_it_cannot_make_leaves_the_process_ephemeral(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    me = identity.claim(settings(blocked / "data"), "worker")
    assert not me.held  # it runs, and takes back nothing it could not prove dead
