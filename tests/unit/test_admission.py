"""Admission control's slot accounting: no slot is lost or doubled when waiters give up, time
out or are cancelled at the moment a slot is handed to them."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from agora.resilience.admission import AdmissionControl

SCOPE: Scope = {"type": "http", "path": "/api/v1/posts/x", "method": "GET", "headers": []}


class Gate:
    """An ASGI app whose requests stay inside until opened; records the statuses sent."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inside = 0
        self.peak = 0

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            await self.open.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
        finally:
            self.inside -= 1


async def request(admission: AdmissionControl) -> int:
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await admission(dict(SCOPE), receive, send)
    return statuses[0]


def admission(gate: Gate, *, limit: int, queue: int, timeout_s: float) -> AdmissionControl:
    return AdmissionControl(
        gate, service="posts", limit=limit, queue=queue, queue_timeout_s=timeout_s, exempt_paths=()
    )


async def test_cancelled_and_timed_out_waiters_lose_no_slot() -> None:
    gate = Gate()
    control = admission(gate, limit=2, queue=10, timeout_s=0.1)
    inside = [asyncio.create_task(request(control)) for _ in range(2)]
    await asyncio.sleep(0.01)
    cancelled = asyncio.create_task(request(control))
    timed_out = asyncio.create_task(request(control))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    assert await timed_out == 503
    gate.open.set()
    assert await asyncio.gather(*inside) == [200, 200]
    # both slots are back: two at once are admitted again, a third still waits its turn
    gate.open.clear()
    again = [asyncio.create_task(request(control)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert gate.inside == 2
    gate.open.set()
    assert await asyncio.gather(*again) == [200, 200, 200]
    assert gate.peak == 2


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on() -> None:
    gate = Gate()
    control = admission(gate, limit=1, queue=10, timeout_s=5)
    first = asyncio.create_task(request(control))
    await asyncio.sleep(0.01)
    handed = asyncio.create_task(request(control))
    after = asyncio.create_task(request(control))
    await asyncio.sleep(0.01)
    gate.open.set()
    await first  # its finish hands the slot to ``handed``, whose task has not run yet
    handed.cancel()
    assert await after == 200
    assert gate.peak == 1
