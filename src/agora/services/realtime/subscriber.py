"""The realtime service's events listener is the shared ``agora.pubsub.Subscriber``."""

from __future__ import annotations

from agora.pubsub import Handler, Subscriber

__all__ = ["Handler", "Subscriber"]
