"""How `huey consume` logs: the application's own logging first, else a handler of its own.

The consumer imports the app before it touches logging. If the app configured logging (its
root or `huey` logger has a handler), huey's records go to those handlers unchanged: only the
`huey` logger's level is set (-v, -q). Asking for a format (-l, -S, --log-format json) gives the
`huey` logger a handler of the consumer's, and its records then stay out of the app's handlers
so nothing is written twice. `--logging-config FILE` hands the whole set-up to
`logging.config.dictConfig`.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.config
import logging.handlers
import os
import sys
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

__all__ = [
    "LOGFILE_BACKUPS",
    "LOGFILE_BYTES",
    "LOG_FORMAT",
    "SIMPLE_DATEFMT",
    "SIMPLE_FORMAT",
    "JsonFormatter",
    "RotatingLineHandler",
    "StreamLineHandler",
    "TextFormatter",
    "load_logging_config",
    "setup_logging",
]

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s %(processName)s:%(threadName)s %(message)s"
# huey's `-S/--simple`: the time and the message.
SIMPLE_FORMAT = "%(asctime)s %(message)s"
SIMPLE_DATEFMT = "%H:%M:%S"
LOGFILE_BYTES = 1024 * 1024
LOGFILE_BACKUPS = 3

# LogRecord attributes set by huey_core.execution for task records, and the JSON keys they get
# (the names events use, so one query works on both).
_TASK_FIELDS = {
    "task_id": "id",
    "task_name": "task",
    "task_status": "status",
    "task_duration": "duration",
}


class TextFormatter(logging.Formatter):
    """logging.Formatter with the formatted time kept for the rest of its second: the same
    text, without a strftime per record (a busy consumer logs two records per task)."""

    _cached: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        cached = self._cached  # one read: another thread may replace it meanwhile
        if cached[0] == second:
            text = cached[1]
        else:
            stamp = self.converter(record.created)
            text = time.strftime(datefmt or self.default_time_format, stamp)
            self._cached = (second, text)
        if datefmt:
            return text
        return self.default_msec_format % (text, record.msecs) if self.default_msec_format else text


class StreamLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """logging.StreamHandler that formats a record before it takes its lock and never makes a
    thread wait for that lock: the line joins a queue, and whichever thread holds the lock
    writes every queued line in one call before it lets go. Worker threads logging at once
    (two records per task each) then neither queue up on the lock nor pay a write each. The
    lines are the same, each whole, in the order they were queued; a line is written before
    `handle()` returns, or by the thread writing at that moment before it returns. `flush()`
    writes every queued line. `huey consume` logs to stderr through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending: deque[tuple[str, logging.LogRecord]] = deque()
        super().__init__(*args, **kwargs)  # (stream), or a RotatingFileHandler's arguments
        _HANDLERS.add(self)

    def handle(self, record: logging.LogRecord) -> Any:
        kept = self.filter(record)
        if isinstance(kept, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = kept
        if not kept:
            return kept
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging reports it, as Handler.emit does
            self.handleError(record)
            return kept
        self._pending.append((line, record))
        self._write_pending()
        return kept

    def _write_pending(self) -> None:
        """Write the queued lines unless another thread holds the lock. That thread looks at
        the queue again after it lets go, so a line queued while it writes is not left."""
        pending, lock = self._pending, self.lock
        while pending and lock.acquire(blocking=False):  # type: ignore[union-attr]
            try:
                self._write_queued()
            finally:
                lock.release()  # type: ignore[union-attr]

    def _write_queued(self) -> None:
        """Under the lock: one write for everything queued (only the lock holder takes)."""
        pending = self._pending
        lines, last = [], None
        while pending:
            line, last = pending.popleft()
            lines.append(line)
        if last is None:
            return
        try:
            self.write("".join(lines))
        except Exception:  # noqa: BLE001
            self.handleError(last)

    def flush(self) -> None:
        """Write what is queued (waiting for a thread that is writing) and flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._write_queued()
            super().flush()
        self._write_pending()

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


# Every StreamLineHandler, so a forked child forgets the lines its parent had queued (the
# parent writes them; its writing thread does not exist in the child).
_HANDLERS: weakref.WeakSet[StreamLineHandler] = weakref.WeakSet()


def _forget_pending_lines() -> None:
    for handler in list(_HANDLERS):
        handler._pending.clear()


os.register_at_fork(after_in_child=_forget_pending_lines)


class RotatingLineHandler(StreamLineHandler, logging.handlers.RotatingFileHandler):
    """logging.handlers.RotatingFileHandler, formatting outside its lock and once per record
    (the stdlib one formats twice: once to decide on rolling over). `huey consume -l FILE`."""

    def write(self, text: str) -> None:
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes > 0:
            self.stream.seek(0, 2)  # the end, as the stdlib handler checks it
            if self.stream.tell() + len(text) >= self.maxBytes:
                self.doRollover()
                if self.stream is None:  # a handler made with delay=True opens it when needed
                    self.stream = self._open()
        super().write(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Always: time (ISO 8601, UTC), level, logger, message, process, thread. Task records add id,
    task, status (the event's status: started, finished, error, retrying, ...) and duration
    (seconds, on finished and error); a record with an exception adds its traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for attr, key in _TASK_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, default=str)


def load_logging_config(path: str) -> dict[str, Any]:
    """The dictConfig dictionary in a JSON file (or YAML, when PyYAML is installed).

    Raises ValueError with one line saying what is wrong.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            raise ValueError(f"{path} is YAML, which needs PyYAML: pip install pyyaml") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a logging dictConfig mapping (with 'version': 1)")
    return config


def _app_configured_logging() -> bool:
    return bool(logging.getLogger().handlers or logging.getLogger("huey").handlers)


def setup_logging(
    logfile: str | None,
    verbose: bool,
    quiet: bool,
    simple: bool = False,
    log_format: str = "text",
    logging_config: str | None = None,
) -> None:
    """Set up logging for a consumer (see the module docstring for who decides what).

    Levels: INFO, DEBUG with -v, ERROR with -q. A file rotates at 1 MB and keeps 3 backups.
    Raises ValueError (one line) for a logging config that cannot be read or applied.
    """
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    root = logging.getLogger("huey")
    if logging_config:
        config = load_logging_config(logging_config)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ValueError(f"{logging_config}: {' '.join(str(exc).split())}") from None
        if verbose or quiet:
            root.setLevel(level)
        return
    explicit = bool(logfile or simple or log_format != "text")
    if not explicit and _app_configured_logging():
        if verbose or quiet or root.level == logging.NOTSET:
            root.setLevel(level)
        return
    handler: logging.Handler
    if logfile:
        handler = RotatingLineHandler(logfile, maxBytes=LOGFILE_BYTES, backupCount=LOGFILE_BACKUPS)
    else:
        handler = StreamLineHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif simple:
        handler.setFormatter(TextFormatter(SIMPLE_FORMAT, SIMPLE_DATEFMT))
    else:
        handler.setFormatter(TextFormatter(LOG_FORMAT))
    root.setLevel(level)
    root.addHandler(handler)
    # The app's root handlers (reached here only when a format was asked for) would print
    # every record a second time, in their own format.
    root.propagate = not logging.getLogger().handlers
