"""The artifact store: everything a study makes once and reuses (cells, base models, saliency
precomputes, metric runs) is an :class:`Artifact` (kind, identity, directory) with one rule of
"finished" (a record file with ``status: ok``, written atomically last), one way to mark it finished
(``write_record``) and one to keep two processes from making it at once (``claim``); plus
a cell's place in the tree and state, and provenance. What an identity hashes is
``roarkar.identity``'s."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from roarkar.files import (  # noqa: F401 - re-exported: the store owns a cell's files
    child_path,
    file_lock,
    git_commit,
    path_component,
    write_text_atomic,
)

RESULT_FILE = "result.json"
#: a cell's fields that name folders, and the config key each comes from
FOLDER_KEYS = {
    "dataset": "dataset.name",
    "model": "model.name",
    "protocol": "protocol.name",
    "method": "method.id",
    "layer": "protocol.layer",
    "mode": "protocol.mode",
}


@dataclass(frozen=True)
class Cell:
    """One trained model of a study: the row it becomes in the long results table."""

    dataset: str
    model: str
    protocol: str
    method: str
    layer: str
    mode: str
    percent: float
    seed: int

    def __post_init__(self) -> None:
        """Each name becomes a folder (``relative_dir``): one path component each, else a
        ValueError naming the config key it came from."""
        for field, key in FOLDER_KEYS.items():
            if field != "layer" or self.layer:
                path_component(getattr(self, field), key)

    def as_dict(self) -> dict:
        return asdict(self)

    def relative_dir(self, cell_id: str) -> Path:
        place = self.layer if self.protocol == "layer" else "input"
        return child_path(
            "cells",
            *(
                (getattr(self, f), FOLDER_KEYS[f])
                for f in ("dataset", "model", "protocol", "method")
            ),
            f"{place}-{self.mode}-p{self.percent:g}-s{self.seed}-{cell_id[:8]}",
        )


def write_json_atomic(path: Path, payload: Mapping) -> None:
    """Write JSON to a temporary file and rename it over ``path``: readers see all or nothing."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str))


def read_result(directory: Path, name: str = RESULT_FILE) -> dict | None:
    """The record file ``name`` (result.json) in ``directory``, or None when there is none."""
    path = Path(directory) / name
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); move it away to make it again"
        ) from exc


def is_finished_record(result: Mapping | None, identity: str | None = None) -> bool:
    """The one rule for "finished": a record whose status is ok (a failed cell is retried, a
    running one is left to its claim) and, given ``identity``, that does not name another one."""
    if result is None or result.get("status") != "ok":
        return False
    return identity is None or result.get("identity", identity) == identity


def finished_result(directory: Path) -> dict | None:
    """The cell's result when it is finished (:func:`is_finished_record`), else None."""
    result = read_result(directory)
    return result if is_finished_record(result) else None


def is_finished(directory: Path) -> bool:
    """Whether the cell in ``directory`` is finished (see :func:`finished_result`)."""
    return finished_result(directory) is not None


CLAIM_FILE = "claim.json"


@dataclass(frozen=True)
class Artifact:
    """One thing made once and reused: ``kind`` (cell, base_model, precompute, metric_run), its
    ``identity`` and ``directory``. Finished when its record file (``record``: result.json, or the
    kind's own name kept for existing trees) passes :func:`is_finished_record`; the record is
    written last, atomically, so a finished record means a whole artifact."""

    kind: str
    identity: str
    directory: Path
    record: str = RESULT_FILE

    @property
    def record_path(self) -> Path:
        return Path(self.directory) / self.record

    def read(self) -> dict | None:
        """The record, finished or not (None when there is none)."""
        return read_result(self.directory, self.record)

    def finished(self) -> dict | None:
        """The record when the artifact is finished, else None."""
        record = self.read()
        return record if is_finished_record(record, self.identity) else None

    def write_record(self, record: Mapping) -> dict:
        """Write the record atomically, stamped with kind and identity (a record without a
        ``status`` is refused: "finished" reads it); return what was written."""
        if "status" not in record:
            raise ValueError(f"a {self.kind} record needs a status ({self.record_path})")
        stamped = {"kind": self.kind, "identity": self.identity} | dict(record)
        write_json_atomic(self.record_path, stamped)
        return stamped

    def claim(self, ttl_s: float) -> Claim:
        """An expiring claim on making it (see :class:`Claim`)."""
        return Claim(self.directory, ttl_s)


def _owner() -> dict:
    """Who runs this cell: host, pid, and the cluster job id when there is one (a requeued job
    keeps its job id, so it may take over its own claim)."""
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_JOB_ID") or ""
    array = os.environ.get("SLURM_ARRAY_TASK_ID")
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": f"{job}_{array}" if job and array else job,
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Claim:
    """An expiring claim on an artifact's directory: two sweeps never train one cell at once.

    Created with ``os.link`` (atomic create-if-absent, also on NFS). A claim may be taken over when
    it has expired, when its owner is a dead process on this host, or when it is this job's own
    claim from before a requeue. ``heartbeat`` extends it, at most every ``ttl_s / 4`` seconds.
    """

    def __init__(self, directory: Path, ttl_s: float):
        self.path = Path(directory) / CLAIM_FILE
        self.ttl_s = float(ttl_s)
        self.token = f"{uuid.uuid4().hex}"
        self._last = 0.0

    def _payload(self) -> dict:
        now = time.time()
        return _owner() | {"token": self.token, "claimed_at": now, "expires_at": now + self.ttl_s}

    def holder(self) -> dict | None:
        """The current claim's content, or None."""
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _stale(self, held: dict) -> bool:
        me = _owner()
        if held.get("expires_at", 0) < time.time():
            return True
        if held.get("job") and held.get("job") == me["job"]:
            return True  # our own job, requeued
        return held.get("host") == me["host"] and not _pid_alive(int(held.get("pid", -1)))

    def acquire(self) -> bool:
        """Take the claim; False when someone else holds a live one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            tmp = self.path.with_name(f".{CLAIM_FILE}.{self.token}")
            tmp.write_text(json.dumps(self._payload()))
            try:
                os.link(tmp, self.path)
                self._last = time.time()
                return True
            except FileExistsError:
                held = self.holder()
                if held is not None and not self._stale(held):
                    return False
                # move the stale claim aside; of several racing processes only one rename succeeds
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.path, self.path.with_name(f".{CLAIM_FILE}.stale.{self.token}"))
                    os.unlink(self.path.with_name(f".{CLAIM_FILE}.stale.{self.token}"))
            finally:
                tmp.unlink(missing_ok=True)
        return False

    def heartbeat(self) -> None:
        """Push the expiry forward while the cell runs (rate-limited)."""
        if time.time() - self._last < self.ttl_s / 4:
            return
        held = self.holder()
        if held is None or held.get("token") != self.token:
            return  # lost it (expired and taken over): the other run will write the same result
        write_text_atomic(self.path, json.dumps(self._payload()))
        self._last = time.time()

    def release(self) -> None:
        """Drop the claim if it is still ours."""
        held = self.holder()
        if held is not None and held.get("token") == self.token:
            self.path.unlink(missing_ok=True)


def cell_state(directory: Path) -> tuple[str, dict]:
    """A cell's state and its result (``{}`` when there is none): ``done`` (finished), ``running``
    (an unexpired claim), ``failed`` (its last run failed), else ``todo``."""
    result = read_result(directory) or {}
    if is_finished_record(result):
        return "done", result
    held = Claim(directory, 0).holder()
    if held and held.get("expires_at", 0) > time.time():
        return "running", result
    return ("failed" if result.get("status") == "failed" else "todo"), result
