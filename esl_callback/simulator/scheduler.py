"""The core scheduler (switch_scheduler.c): tasks with an id and a group, run on whole seconds.

Every task has a number (``task_id``, counting up from 1 for the switch's life) and a group:
the channel uuid for the tasks ``sched_hangup`` and ``sched_broadcast`` add
(switch_ivr_async.c switch_ivr_schedule_hangup / _broadcast), so ``sched_del <uuid>`` removes
all of a channel's tasks at once.

When a task runs is the task thread's (switch_scheduler_task_thread): a pass over the list
(task_thread_loop, which runs the tasks whose whole epoch second has come), then a wait of at
most half a second for an event on its queue (``switch_queue_pop_timeout(globals.event_queue,
&pop, 500000)``). Adding a task pushes ADD_SCHEDULE onto that queue, which ends the wait: a pass
at once. So a task runs on the first pass at or after its second, and passes fall every half
second from the last task added: ``sched_hangup +2`` sent 0.22 s into a second runs 2 s later,
0.22 s into its second. The captures agree (events-plain: added at .220, ran at .208-.226 by
the event's stamp and its arrival; flow-max-duration: ``+3`` added at .148, ran at .148-.157).
Deleting a task frees it, and a repeating task pushes RE_SCHEDULE, during a pass: they keep
the beat.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.event

from esl_callback.simulator.clock import SimClock

log = logging.getLogger(__name__)

# How long the task thread waits for an event between passes (switch_scheduler.c).
PASS_SECONDS = 0.5

_NUMBER = re.compile(r"\s*([+-]?\d+)")


def atol(text: str) -> int:
    """C's atol: the leading (signed) number of ``text``, 0 when there is none."""
    found = _NUMBER.match(text)
    return int(found.group(1)) if found else 0


def is_digit_string(text: str) -> bool:
    """switch_is_digit_string: only the digits 0-9 (an empty string counts)."""
    return all("0" <= c <= "9" for c in text)


@dataclass
class Task:
    """One entry of the task list (switch_scheduler_task_container_t)."""

    task_id: int
    runtime: int  # whole epoch seconds
    group: str
    desc: str
    func: Callable[[], None]
    repeat: int = 0
    executed: int = 0


class Scheduler:
    """switch_scheduler.c: a task list in the order tasks were added, and one thread (here a
    greenlet, started with the first task) running the tasks that are due."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._tasks: dict[int, Task] = {}  # by id, in the order they were added
        self._last_id = 0
        self._changed = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._stopped = False

    @property
    def tasks(self) -> list[Task]:
        """The pending tasks, in the order they were added."""
        return list(self._tasks.values())

    def add(self, runtime: int, func: Callable[[], None], desc: str, group: str | None) -> int:
        """switch_scheduler_add_task: a runtime already past is a repeat interval from now."""
        now = math.floor(self.clock.now())
        repeat = 0
        if runtime < now:
            repeat = runtime
            runtime += now
        self._last_id = self._last_id % 0xFFFFFFFF + 1  # a uint32 that skips 0
        task = Task(self._last_id, runtime, group or "none", desc, func, repeat)
        self._tasks[task.task_id] = task
        self._wake()
        return task.task_id

    def delete_id(self, task_id: int) -> int:
        """switch_scheduler_del_task_id: how many tasks were deleted (0 or 1)."""
        return 1 if self._tasks.pop(task_id, None) is not None else 0

    def delete_group(self, group: str) -> int:
        """switch_scheduler_del_task_group: how many tasks of ``group`` were deleted."""
        if not group:
            return 0
        doomed = [task_id for task_id, task in self._tasks.items() if task.group == group]
        for task_id in doomed:
            del self._tasks[task_id]
        return len(doomed)

    def stop(self) -> None:
        """The switch shuts down: no task runs any more."""
        self._stopped = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _wake(self) -> None:
        if self._stopped:
            return
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        self._changed.set()

    def _run(self) -> None:
        """The task thread: a pass, then a wait until a task is added (a pass at once) or until
        the pass that runs the first task due, passes falling every PASS_SECONDS."""
        while True:
            self._changed.clear()
            self._run_due()
            last = self.clock.now()
            while True:
                if not self._tasks:
                    self._changed.wait()
                    break
                due = min(task.runtime for task in self._tasks.values())
                at = last + max(1, math.ceil((due - last) / PASS_SECONDS)) * PASS_SECONDS
                remaining = at - self.clock.now()
                if remaining <= 0:
                    break
                if self._changed.wait(self.clock.real(remaining)):
                    break

    def _run_due(self) -> None:
        """task_thread_loop: every task whose second has come runs once, in list order; it is
        then removed, unless it repeats."""
        for task in self.tasks:
            if self._tasks.get(task.task_id) is not task:
                continue  # deleted by a task that ran before it
            if self.clock.now() < task.runtime:
                continue
            task.executed = math.floor(self.clock.now())
            try:
                task.func()
            except Exception:
                log.exception("task %d %s (%s) failed", task.task_id, task.desc, task.group)
            if task.repeat:
                task.runtime = math.floor(self.clock.now()) + task.repeat
            if task.runtime <= task.executed:
                self._tasks.pop(task.task_id, None)
