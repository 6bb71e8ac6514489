"""Network calls off the UI thread: `TaskRunner.run(fn, ...)` runs `fn` on a worker of its own
thread pool and hands the result, or the ApiError, to callbacks on the UI thread.

An exception that is not an ApiError (a bug) is logged with its traceback and reaches the
window as an ApiError saying something went wrong, never as a traceback.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from esl_callback.desktop.api_errors import ApiError

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[ApiError], None]


class _Task(QRunnable):
    def __init__(self, runner: TaskRunner, task_id: int, fn: Callable[..., Any], args: tuple):
        super().__init__()
        self.runner, self.task_id, self.fn, self.args = runner, task_id, fn, args

    def run(self) -> None:
        try:
            result, error = self.fn(*self.args), None
        except ApiError as exc:
            result, error = None, exc
        except Exception:
            log.exception("a request to the server failed unexpectedly")
            result, error = None, ApiError("Something went wrong; please try again.", "bug")
        self.runner.finished.emit(self.task_id, result, error)


class TaskRunner(QObject):
    """Runs blocking calls on worker threads; callbacks run on the UI thread."""

    finished = Signal(int, object, object)  # task id, result, ApiError or None
    idle = Signal()  # no task left running

    def __init__(self, parent: QObject | None = None, threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Done | None, Failed | None]] = {}
        self._closed = False
        self.finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        done: Done | None = None,
        failed: Failed | None = None,
    ) -> None:
        """Run `fn(*args)` off the UI thread; then `done(result)` or `failed(error)` on it."""
        if self._closed:
            return
        task_id = next(self._ids)
        self._pending[task_id] = (done, failed)
        self.pool.start(_Task(self, task_id, fn, args))

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @Slot(int, object, object)
    def _deliver(self, task_id: int, result: Any, error: ApiError | None) -> None:
        done, failed = self._pending.pop(task_id, (None, None))
        if not self._closed:
            if error is None and done is not None:
                done(result)
            elif error is not None and failed is not None:
                failed(error)
        if not self._pending:
            self.idle.emit()

    def close(self, wait_ms: int = 15000) -> None:
        """Deliver nothing more; wait for the calls in flight (each has its own timeout)."""
        self._closed = True
        self.pool.waitForDone(wait_ms)
