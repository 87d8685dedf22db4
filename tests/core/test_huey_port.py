"""A huey application's test module, ported: only the imports changed.

Everything below the import block is written against huey's public API exactly as a huey user
writes it (unittest, MemoryHuey, dequeue/execute, immediate mode). The diff from the huey
version is the three marked import lines; with those reverted the module passes against huey
3.5.4 too, which is how its expectations were checked. (`Huey(name, backend="memory")` is the
same instance; MemoryHuey, RedisHuey and SqliteHuey exist so ports can keep huey's class names.)
"""

import datetime
import unittest

from huey_core import MemoryHuey, crontab  # was: from huey import MemoryHuey, crontab
from huey_core.exceptions import (  # was: from huey.exceptions import ...
    CancelExecution,
    RetryTask,
    TaskException,
    TaskLockedException,
)
from huey_core.signals import SIGNAL_COMPLETE, SIGNAL_ERROR  # was: from huey.signals import ...

huey = MemoryHuey("port-app", utc=False)


@huey.task()
def add(a, b):
    return a + b


@huey.task(retries=2)
def flaky(state):
    state["calls"] = state.get("calls", 0) + 1
    raise ValueError(f"flaky {state['calls']}")


@huey.task(context=True)
def whoami(task=None):
    return task.id


@huey.task()
@huey.lock_task("reports")
def report():
    return "report done"


@huey.task()
def poll(n):
    if n < 3:
        raise RetryTask(delay=10)
    return n


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly():
    return "backup"


class HueyAppTests(unittest.TestCase):
    def setUp(self):
        huey.immediate = False
        huey.flush()

    def execute_next(self, timestamp=None):
        task = huey.dequeue()
        self.assertIsNotNone(task)
        return huey.execute(task, timestamp=timestamp)

    def test_workflow(self):
        result = add(2, 3)
        self.assertEqual(len(huey), 1)
        self.assertIsNone(result.get())
        self.assertEqual(self.execute_next(), 5)
        self.assertEqual(result.get(), 5)
        self.assertEqual(huey.result_count(), 0)

    def test_scheduling(self):
        eta = datetime.datetime.now() + datetime.timedelta(seconds=60)
        result = add.schedule((1, 1), eta=eta)
        task = huey.dequeue()
        self.assertEqual(task.eta, eta)
        huey.execute(task)  # not due yet: goes to the schedule
        self.assertEqual(huey.scheduled_count(), 1)
        self.assertEqual(huey.read_schedule(eta - datetime.timedelta(seconds=1)), [])
        (due,) = huey.read_schedule(eta)
        self.assertEqual(due.id, result.id)
        self.assertEqual(huey.execute(due, timestamp=eta), 2)
        self.assertEqual(result(), 2)

    def test_retries_then_error(self):
        state = {}
        result = flaky(state)
        for _ in range(3):
            self.execute_next()
        self.assertIsNone(huey.dequeue())
        with self.assertRaises(TaskException) as ctx:
            result.get()
        self.assertIn("ValueError", ctx.exception.metadata["error"])
        self.assertEqual(ctx.exception.metadata["retries"], 0)

    def test_retry_task(self):
        poll(1)
        self.execute_next()
        self.assertEqual(huey.scheduled_count(), 1)
        (task,) = huey.scheduled()
        self.assertEqual(task.retries, 0)  # RetryTask adds the retry it uses

    def test_revoke(self):
        result = add(1, 2)
        result.revoke()
        self.assertTrue(result.is_revoked())
        self.assertIsNone(self.execute_next())
        self.assertFalse(result.is_revoked())
        add.revoke()
        r2 = add(3, 4)
        self.assertIsNone(self.execute_next())
        add.restore()
        r3 = r2.reschedule()
        self.assertEqual(self.execute_next(), 7)
        self.assertEqual(r3.get(), 7)

    def test_pipeline(self):
        pipe = add.s(1, 2).then(add, 3).then(add, 4)
        results = huey.enqueue(pipe)
        while len(huey):
            self.execute_next()
        self.assertEqual(results.get(), [3, 6, 10])

    def test_context(self):
        result = whoami()
        self.assertEqual(self.execute_next(), result.id)

    def test_lock(self):
        with huey.lock_task("reports"):
            result = report()
            self.execute_next()
        self.assertRaises(TaskException, result.get)
        self.assertEqual(huey.flush_locks(), set())
        self.assertEqual(report.call_local(), "report done")
        with huey.lock_task("reports"):
            self.assertRaises(TaskLockedException, report.call_local)

    def test_periodic(self):
        at_three = datetime.datetime(2024, 1, 1, 3, 0)
        self.assertEqual([t.name for t in huey.read_periodic(at_three)], ["nightly"])
        self.assertEqual(huey.read_periodic(at_three.replace(minute=1)), [])

    def test_hooks_and_signals(self):
        seen = []

        @huey.pre_execute()
        def veto(task):
            if task.args == (0, 0):
                raise CancelExecution()

        @huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR)
        def track(signal, task, exc=None):
            seen.append(signal)

        try:
            add(0, 0)
            add(1, 1)
            self.execute_next()
            self.execute_next()
            self.assertEqual(seen, [SIGNAL_COMPLETE])
        finally:
            huey.unregister_pre_execute(veto)
            huey.disconnect_signal(track)

    def test_immediate_mode(self):
        huey.immediate = True
        self.assertEqual(add(5, 6).get(), 11)
        self.assertEqual(add.map([(1, 1), (2, 2)]).get(), [2, 4])
        huey.immediate = False
        self.assertIsNone(add(1, 1).get())


if __name__ == "__main__":
    unittest.main()
