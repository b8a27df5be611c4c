"""What only the realtime service holds in its runtime (``agora.runtime.Runtime.parts``)."""

from __future__ import annotations

from dataclasses import dataclass

from agora.ratelimit.websocket import MessageLimits
from agora.services.realtime.admission import SocketAdmission
from agora.services.realtime.hub import Hub
from agora.services.realtime.presence import Presence
from agora.services.realtime.service import EventDispatcher
from agora.services.realtime.subscriber import Subscriber


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeParts:
    hub: Hub
    presence: Presence
    admission: SocketAdmission
    dispatcher: EventDispatcher
    subscriber: Subscriber
    ws_limits: MessageLimits | None  # None: limits disabled
