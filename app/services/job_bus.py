"""Waking event streams when their job changes, in any process.

One poller thread per process reads, in one query, the revision and queue
position of every job an open stream watches (every JOB_POLL_S, and at once
when this process changed a job), and wakes the streams whose job moved. A
stream reads its job only when woken: 200 open streams cost one query per
tick, not 200.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Job
from app.services.jobs import QUEUED, queue_positions

log = logging.getLogger("nano_banana.jobs")


class Watcher:
    __slots__ = ("job_id", "state", "woken")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.state: tuple | None = None  # (revision, position) as the bus last read it
        self.woken = threading.Event()

    def wait(self, timeout: float) -> bool:
        woken = self.woken.wait(timeout)
        self.woken.clear()
        return woken


class JobBus:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._watchers: dict[str, set[Watcher]] = {}
        self._seen: dict[str, tuple] = {}
        self._poked = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def watching(self) -> int:
        with self._lock:
            return sum(len(watchers) for watchers in self._watchers.values())

    def watch(self, job_id: str) -> Watcher:
        watcher = Watcher(job_id)
        with self._lock:
            self._watchers.setdefault(job_id, set()).add(watcher)
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._run, name="nb-job-bus", daemon=True)
                self._thread.start()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            watchers = self._watchers.get(watcher.job_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[watcher.job_id]
                    self._seen.pop(watcher.job_id, None)

    def poke(self) -> None:
        self._poked.set()

    def stop(self) -> None:
        self._stopped.set()
        self._poked.set()
        with self._lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.woken.set()

    def _run(self) -> None:
        poll_s = float(self.app.config["JOB_POLL_S"])
        queue_limit = int(self.app.config["JOB_MAX_QUEUED"]) * 2
        with self.app.app_context():
            while not self._stopped.is_set():
                self._poked.wait(poll_s)
                self._poked.clear()
                with self._lock:
                    ids = list(self._watchers)
                if not ids:
                    continue
                try:
                    states = self._states(ids, queue_limit)
                except Exception:
                    log.exception("could not read job states")
                    self._stopped.wait(1.0)
                    continue
                finally:
                    db.session.remove()
                self._wake(states)

    def _states(self, ids: list[str], queue_limit: int) -> dict[str, tuple]:
        states: dict[str, tuple] = {job_id: ("gone",) for job_id in ids}
        rows = db.session.execute(
            select(Job.id, Job.revision, Job.status).where(Job.id.in_(ids))
        ).all()
        positions = {}
        if any(status == QUEUED for _id, _revision, status in rows):
            positions = queue_positions(queue_limit)
        for job_id, revision, _status in rows:
            states[job_id] = (revision, positions.get(job_id))
        return states

    def _wake(self, states: dict[str, tuple]) -> None:
        with self._lock:
            for job_id, state in states.items():
                if self._seen.get(job_id) == state:
                    continue
                self._seen[job_id] = state
                for watcher in self._watchers.get(job_id, ()):
                    watcher.state = state
                    watcher.woken.set()
