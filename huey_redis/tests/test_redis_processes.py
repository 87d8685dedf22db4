"""Exactly once under normal operation: four processes drain one queue of 10,000 messages
through the backend directly; every message is delivered once, none is lost."""

from __future__ import annotations

import multiprocessing

MESSAGES = 10_000
PROCESSES = 4


def _drain(backend, worker: int, out) -> None:
    backend.after_fork()  # the parent's pooled connections must not be shared
    got = []
    while True:
        delivery = backend.queue.dequeue(f"proc-{worker}", 60.0, wait=0.5)
        if delivery is None:
            break
        got.append((delivery.data, delivery.deliveries))
        backend.queue.ack(delivery.lease)
    out.put(got)


def test_four_processes_each_message_exactly_once(factory):
    backend = factory()
    sent = [f"msg-{i}".encode() for i in range(MESSAGES)]
    for i, data in enumerate(sent):
        backend.queue.enqueue(data, priority=i % 3)
    assert backend.queue.size() == MESSAGES

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(backend, i, out)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    received = [data for got in results for data, _ in got]
    assert len(received) == MESSAGES, "a message was lost or delivered twice"
    assert sorted(received) == sorted(sent)
    assert all(deliveries == 1 for got in results for _, deliveries in got)
    assert all(len(got) > 0 for got in results), "some process never got work"
    assert backend.queue.size() == 0 and backend.queue.leases() == []
