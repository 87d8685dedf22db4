"""Consumer logging as operators expect it: banner, a line per task start and finish, errors with
their traceback, -v / -q levels and the rotating -l file."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import signal
import threading
import time

import pytest

from huey_core.cli import LOGFILE_BACKUPS, LOGFILE_BYTES, setup_logging
from huey_core.cli.logs import (
    LOG_FORMAT,
    SIMPLE_DATEFMT,
    SIMPLE_FORMAT,
    RotatingLineHandler,
    StreamLineHandler,
    TextFormatter,
)
from huey_core.testing.apps import wait_for

pytestmark = pytest.mark.slow


def _run_tasks(app, *options: str):
    """A consumer on SQLite logging to a file runs add(1, 2) and fail('boom') (1 retry)."""
    module = app.load()
    logfile = app.directory / "consumer.log"
    proc = app.start_consumer("-n", "-s", "0.2", "-l", str(logfile), *options)
    ok = module.add(1, 2)
    bad = module.fail("boom")
    assert ok.get(blocking=True, timeout=20) == 3
    assert wait_for(lambda: logfile.exists() and logfile.read_text().count("ValueError: boom") >= 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    return logfile.read_text(), ok.id, bad.id


def test_banner_task_lines_and_error_tracebacks(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/log.db")
    log, ok_id, bad_id = _run_tasks(app)
    lines = log.splitlines()
    assert any(f"instance '{app.name}' on SQLBackend(sqlite:///" in line for line in lines)
    assert any("1 thread worker(s), blocking mode" in line for line in lines)
    assert any("periodic tasks: disabled" in line for line in lines)
    # One INFO line when the task starts and one when it finishes: name, id, duration.
    start = [line for line in lines if ok_id in line and "executing" in line]
    done = [line for line in lines if ok_id in line and "finished in" in line]
    assert len(start) == 1 and " INFO " in start[0] and f"{app.module}.add" in start[0]
    assert len(done) == 1 and " INFO " in done[0] and re.search(r"finished in \d+\.\d+s", done[0])
    # A failure: an ERROR line naming the task and its id, followed by the traceback.
    errors = [i for i, line in enumerate(lines) if " ERROR " in line and bad_id in line]
    assert len(errors) == 2
    assert re.search(rf"{app.module}\.fail: {bad_id}.* failed after \d+\.\d+s", lines[errors[0]])
    assert lines[errors[0] + 1].startswith("Traceback (most recent call last):")
    assert "DEBUG" not in log  # INFO is the default level


def test_quiet_logs_only_errors_and_verbose_adds_debug(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/quiet.db")
    log, ok_id, bad_id = _run_tasks(app, "-q")
    assert ok_id not in log and " INFO " not in log and "consumer ready" not in log
    assert f"{app.module}.fail: {bad_id}" in log and "failed after" in log and "Traceback" in log

    app = make_app(f"sqlite:///{tmp_path}/verbose.db")
    log, ok_id, _ = _run_tasks(app, "-v")
    assert " DEBUG " in log and f"executing {app.module}.add: {ok_id}" in log


@pytest.fixture
def restore_huey_logger():
    logger = logging.getLogger("huey")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield logger
    for handler in logger.handlers:
        if handler not in saved[1]:
            handler.close()
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def test_logfile_rotates_at_one_megabyte_keeping_three(tmp_path, restore_huey_logger):
    logfile = tmp_path / "huey.log"
    setup_logging(str(logfile), verbose=False, quiet=False)
    handler = restore_huey_logger.handlers[-1]
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (LOGFILE_BYTES, LOGFILE_BACKUPS) == (1024 * 1024, 3)
    assert handler.maxBytes == LOGFILE_BYTES and handler.backupCount == LOGFILE_BACKUPS
    line = "x" * 1000
    for _ in range(5 * 1100):  # ~5.5 MB: more than the file and its three backups hold
        logging.getLogger("huey.consumer").info(line)
    handler.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["huey.log", "huey.log.1", "huey.log.2", "huey.log.3"]
    assert all(p.stat().st_size <= LOGFILE_BYTES + 2000 for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "verbose, quiet, level",
    [(False, False, logging.INFO), (True, False, logging.DEBUG), (False, True, logging.ERROR)],
)
def test_levels(verbose, quiet, level, restore_huey_logger):
    setup_logging(None, verbose=verbose, quiet=quiet)
    assert restore_huey_logger.level == level


@pytest.mark.parametrize(
    ("fmt", "datefmt"),
    [(LOG_FORMAT, None), (SIMPLE_FORMAT, SIMPLE_DATEFMT)],
    ids=["full", "simple"],
)
def test_the_consumer_formats_times_exactly_as_logging_does(fmt, datefmt, monkeypatch):
    """TextFormatter reuses the formatted second: lines within one second, across a second,
    across a DST change (New York) and at a millisecond's edge read as logging.Formatter's."""
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    time.tzset()
    try:
        ours, stdlib = TextFormatter(fmt, datefmt), logging.Formatter(fmt, datefmt)
        first = 1793511000.0  # 2026-11-01 05:30 UTC: 01:30 EDT; an hour later 01:30 EST
        for created in (first, first + 0.2, first + 3600.5, first + 3600.999, 1.5):
            record = logging.LogRecord("huey", logging.INFO, __file__, 1, "task %s", ("x",), None)
            record.created, record.msecs = created, (created - int(created)) * 1000
            assert ours.format(record) == stdlib.format(record)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("kind", ["stream", "file"])
def test_records_of_many_threads_arrive_whole_in_the_consumer_format(kind, tmp_path):
    """The consumer's handlers format outside their lock: every record of 8 threads logging at
    once is one whole line, in the same text logging.Formatter gives, none lost or repeated,
    and a record that cannot be formatted is reported without stopping the ones after it."""
    path = tmp_path / "huey.log"
    if kind == "stream":
        stream = open(path, "w")  # noqa: SIM115 - closed below
        handler: logging.Handler = StreamLineHandler(stream)
    else:
        handler = RotatingLineHandler(str(path), maxBytes=LOGFILE_BYTES, backupCount=1)
    handler.setFormatter(TextFormatter(LOG_FORMAT))
    handler.addFilter(lambda record: record.msg != "skip me")
    logger = logging.getLogger(f"huey.test.threads.{kind}")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    stdlib = logging.Formatter(LOG_FORMAT)
    expected: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if "bad record" not in record.msg:
            expected.append(stdlib.format(record))  # list.append is atomic
        return True

    logger.addFilter(keep)

    def work(n: int) -> None:
        for i in range(300):
            logger.info("record %d of thread %d %s", i, n, "x" * (i % 50))

    try:
        threads = [threading.Thread(target=work, args=(n,), name=f"T{n}") for n in range(8)]
        for thread in threads:
            thread.start()
        logger.info("skip me")  # dropped by the handler's filter
        logger.info("a bad record %d", "not a number")  # reported by logging.handleError
        logger.info("after the bad one")
        for thread in threads:
            thread.join()
    finally:
        logger.removeHandler(handler)
        handler.close()
        if kind == "stream":
            stream.close()
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted(e for e in expected if "skip me" not in e)
    assert len(lines) == 8 * 300 + 1


class _SlowStream:
    """A stream whose writes from the thread named "slow" wait until `go` is set."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.writing, self.go = threading.Event(), threading.Event()

    def write(self, text: str) -> None:
        if threading.current_thread().name == "slow":
            self.writing.set()
            assert self.go.wait(20)
        self.text.append(text)

    def flush(self) -> None:
        pass


def _stream_logger(name: str, stream: _SlowStream) -> tuple[logging.Logger, StreamLineHandler]:
    handler = StreamLineHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"huey.test.{name}")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    return logger, handler


def test_a_thread_logging_while_another_writes_does_not_wait_for_that_write():
    """Worker threads log two lines per task: one whose line comes while another thread's write
    is under way returns at once, and the writing thread writes its line too, in order."""
    stream = _SlowStream()
    logger, handler = _stream_logger("nowait", stream)
    try:
        slow = threading.Thread(target=logger.info, args=("first",), name="slow")
        slow.start()
        assert stream.writing.wait(10)  # the slow thread holds the handler's lock, writing
        logged = threading.Thread(target=lambda: [logger.info("second"), logger.info("third")])
        logged.start()
        logged.join(5)
        assert not logged.is_alive(), "a logging thread waited for another thread's write"
        assert stream.text == []
        stream.go.set()
        slow.join(10)
        assert "".join(stream.text) == "first\nsecond\nthird\n"
        assert len(stream.text) == 2  # the two lines that waited went in one write
    finally:
        stream.go.set()
        logger.removeHandler(handler)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_does_not_write_the_lines_its_parent_had_queued(tmp_path):
    """Process workers fork: a line the parent queued while a write was under way is the
    parent's to write, never written a second time by the child."""
    stream = _SlowStream()
    logger, handler = _stream_logger("fork", stream)
    child_out = tmp_path / "child.txt"
    try:
        slow = threading.Thread(target=logger.info, args=("first",), name="slow")
        slow.start()
        assert stream.writing.wait(10)
        logger.info("queued in the parent")  # queued: the slow thread holds the lock
        pid = os.fork()
        if pid == 0:  # the child: log, record what reached the stream, leave at once
            try:
                logger.info("child")
                child_out.write_text("".join(stream.text))
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_out.read_text() == "child\n"
        stream.go.set()
        slow.join(10)
        assert "".join(stream.text) == "first\nqueued in the parent\n"
    finally:
        stream.go.set()
        logger.removeHandler(handler)
