"""TF Serving's model lifecycle for one model: watch the base path, load the highest version, switch.

The version policy is TF Serving's `latest { num_versions: 1 }` (serving/models.config): the highest
integer-named folder under the base path that holds a SavedModel is served. A new version is picked up
by polling, without a restart: it is loaded and warmed up completely while the current version keeps
answering, then requests switch to it in one step and the old version is released when its in-flight
requests finish. A version that fails to load is reported by GetModelStatus and skipped (the current
one keeps serving) until its files change.

Notes: a version folder is loaded only once its listing (names, sizes, mtimes) is unchanged between
two polls, so a folder copied in place non-atomically is not loaded half-written (tf_ganimation.export
renames complete folders, which needs no such care). TF Serving itself has no such check.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import threading
from collections.abc import Iterable, Mapping

import grpc
import numpy as np

from serving.servable import Servable
from serving.status import ServingError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class VersionStatus:
    """What GetModelStatus reports for one version (states as in TF Serving's ModelVersionStatus)."""

    version: int
    state: str  # LOADING | AVAILABLE | END
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


class ModelManager:
    """Keeps the highest version of one model loaded and answers lookups by name and version.

    Args:
        model_name: the name requests use (TF Serving's --model_name).
        base_path: the folder holding `<version>/` SavedModels (TF Serving's --model_base_path).
        poll_interval_s: seconds between scans of base_path (TF Serving's --file_system_poll_wait_seconds).
        max_concurrent_requests: signature runs at a time; more requests wait for a slot.
        warmup: replay each version's warmup requests before serving it.
    """

    def __init__(self, model_name: str, base_path: os.PathLike, poll_interval_s: float = 1.0,
                 max_concurrent_requests: int = 4, warmup: bool = True):
        self.model_name = model_name
        self.base_path = pathlib.Path(base_path)
        if not self.base_path.is_dir():
            raise FileNotFoundError(f"model base path {self.base_path} not found: export a model there first "
                                    "(python scripts/export.py --workdir RUN --export_dir " f"{self.base_path})")
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s={poll_interval_s} is invalid: expected a number > 0")
        if max_concurrent_requests < 1:
            raise ValueError(f"max_concurrent_requests={max_concurrent_requests} is invalid: expected >= 1")
        self.poll_interval_s = poll_interval_s
        self.warmup = warmup
        self._slots = threading.BoundedSemaphore(max_concurrent_requests)
        self._lock = threading.Lock()
        self._current: Servable | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._listings: dict[int, tuple] = {}  # version -> its listing at the previous poll
        self._failed: dict[int, tuple] = {}  # version -> the listing that failed to load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # === Lifecycle ===

    def start(self) -> ModelManager:
        """Loads the highest version now (if any), then polls base_path in a background thread."""
        self.poll(initial=True)
        self._thread = threading.Thread(target=self._poll_forever, name=f"{self.model_name}-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except Exception:  # the poller must survive anything a half-written folder can throw
                logger.exception("polling %s failed", self.base_path)

    def poll(self, initial: bool = False) -> bool:
        """Scans base_path once and switches to the highest loadable version; True if it switched."""
        versions = self._scan()
        for version in sorted(versions, reverse=True):
            listing = versions[version]
            stable = initial or self._listings.get(version) == listing
            self._listings[version] = listing
            current = self.current_version
            if version == current:
                return False
            if self._failed.get(version) == listing:
                continue  # failed with exactly these files; wait for them to change
            if not stable:
                return False  # still being written; look again at the next poll
            if self._load(version):
                return True
        return False

    def _scan(self) -> dict[int, tuple]:
        versions = {}
        for path in self.base_path.iterdir() if self.base_path.is_dir() else []:
            if path.name.isdigit() and (path / "saved_model.pb").is_file():
                versions[int(path.name)] = _listing(path)
        return versions

    def _load(self, version: int) -> bool:
        path = self.base_path / str(version)
        with self._lock:
            self._statuses[version] = VersionStatus(version, "LOADING")
        logger.info("loading %s version %d from %s", self.model_name, version, path)
        try:
            servable = Servable(self.model_name, version, path)
            replayed = servable.warm_up() if self.warmup else 0
        except Exception as error:  # any failure leaves the current version serving
            code = error.code if isinstance(error, ServingError) else grpc.StatusCode.UNKNOWN
            message = f"failed to load {path}: {error}"
            logger.error(message)
            with self._lock:
                self._statuses[version] = VersionStatus(version, "END", code, message)
            self._failed[version] = self._listings.get(version) or _listing(path)
            return False
        with self._lock:
            previous, self._current = self._current, servable
            self._statuses[version] = VersionStatus(version, "AVAILABLE")
            if previous is not None:
                self._statuses[previous.version] = VersionStatus(previous.version, "END")
        logger.info("serving %s version %d (%d warmup requests replayed)", self.model_name, version, replayed)
        return True

    # === Lookups ===

    @property
    def current_version(self) -> int | None:
        with self._lock:
            return self._current.version if self._current is not None else None

    def servable(self, model_name: str, version: int | None = None, version_label: str = "") -> Servable:
        """The servable a request addresses; NOT_FOUND in TF Serving's words when there is none."""
        if version_label:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"version label {version_label!r} is not configured (the local server has no labels; "
                               "address a version by number or leave it out for the latest)")
        with self._lock:
            current = self._current
        wanted = f"Specific({model_name}, {version})" if version is not None else f"Latest({model_name})"
        if model_name != self.model_name or current is None or version not in (None, current.version):
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {wanted}")
        return current

    def run(self, servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_filter: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """servable.run, at most max_concurrent_requests at a time."""
        with self._slots:
            return servable.run(signature_name, inputs, output_filter)

    def status(self, model_name: str, version: int | None = None) -> list[VersionStatus]:
        """GetModelStatus: every version this server has seen, or one; NOT_FOUND for unknown ones."""
        with self._lock:
            statuses = dict(self._statuses)
        if model_name != self.model_name or not statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model_name}")
        if version is None:
            return [statuses[number] for number in sorted(statuses, reverse=True)]
        if version not in statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {model_name}")
        return [statuses[version]]


def _listing(path: pathlib.Path) -> tuple:
    entries = []
    for file in sorted(path.rglob("*")):
        stat = file.stat()
        entries.append((str(file.relative_to(path)), stat.st_size if file.is_file() else -1, stat.st_mtime_ns))
    return tuple(entries)
