"""OpenTelemetry traces: one SDK tracer provider per process, exported over OTLP/HTTP.

Set up in the app's lifespan (so after any fork the server makes), torn down (spans flushed)
at shutdown. With no ``AGORA_OTLP_ENDPOINT`` nothing is installed at all: no provider, no
instrumentation, and the helpers below return at the first ``if``.

Design choices:
- The provider is *not* made the global one. FastAPI (>= 0.160) turns its own telemetry on as
  soon as a global SDK provider exists, which would instrument every request a second time;
  the app builds FastAPI with its telemetry off, and nothing else here reads the global.
- One thin server span per request, opened by ``RequestContextMiddleware`` (not the contrib
  ASGI middleware, measured at +169 us a request); the well-kept contrib instrumentations add
  the client spans: asyncpg (global: it patches the driver's classes), redis-py and httpx
  (per client, so only Agora's clients are traced).
- Sampling is ``ParentBased(TraceIdRatioBased(ratio))``: a caller's decision is always
  honoured. A client span (SQL, Redis, HTTP) with no parent at all is dropped: background loops
  (key refresh, heartbeats, readiness probes) would otherwise start a trace of one span each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.util.types import Attributes

import agora

# Old and new semantic-convention names side by side (net.peer.name and server.address,
# db.system and db.system.name): Jaeger and Tempo versions in the field read one or the other.
# Read once, when the first instrumentation is set up.
_SEMCONV = "http/dup,database/dup"

T = TypeVar("T")


@dataclass
class _Active:
    provider: TracerProvider
    tracer: Tracer


_active: _Active | None = None


def tracer() -> Tracer | None:
    """The process's tracer, or None when tracing is off (the cheap path everywhere)."""
    return _active.tracer if _active is not None else None


class _NoOrphanClientSpans(Sampler):
    """ParentBased(TraceIdRatioBased(ratio)), except that a CLIENT span without a parent is
    dropped: only requests and events start traces."""

    def __init__(self, ratio: float) -> None:
        self._inner = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(  # noqa: PLR0913, PLR0917  # OpenTelemetry's Sampler signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans({self._inner.get_description()})"  # type: ignore[no-untyped-call]


class _PeerService(SpanProcessor):
    """``peer.service`` on database spans, so Jaeger and Tempo draw PostgreSQL as a node of
    the service graph (the asyncpg instrumentation sets ``db.system`` when the span starts)."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:  # noqa: ARG002  # SpanProcessor's signature
        attributes = span.attributes or {}
        system = attributes.get("db.system") or attributes.get("db.system.name")
        if system is not None:
            span.set_attribute("peer.service", str(system))


def build_provider(service: str, endpoint: str, ratio: float) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create(
        {
            "service.name": f"agora-{service}",
            "service.namespace": "agora",
            "service.version": agora.__version__,
        }
    )
    provider = TracerProvider(resource=resource, sampler=_NoOrphanClientSpans(ratio))
    provider.add_span_processor(_PeerService())
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def start(service: str, endpoint: str | None, ratio: float, *, redis: Any = None) -> bool:
    """Install tracing for this process (one service per process); True when this call did,
    and only then should the caller ``stop`` it. Nothing is installed without an endpoint."""
    global _active  # noqa: PLW0603  # one tracer provider per process, as OpenTelemetry's own global
    if endpoint is None or _active is not None:
        return False
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", _SEMCONV)
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    provider = build_provider(service, endpoint, ratio)
    _active = _Active(provider, provider.get_tracer("agora", agora.__version__))
    asyncpg_instrumentor: Any = AsyncPGInstrumentor
    asyncpg_instrumentor().instrument(tracer_provider=provider)
    if redis is not None:
        RedisInstrumentor.instrument_client(
            redis, tracer_provider=provider, request_hook=_redis_peer
        )
    return True


def stop(*, redis: Any = None) -> None:
    """Flush and export what is buffered, then remove the instrumentation."""
    global _active
    if _active is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    active, _active = _active, None
    asyncpg_instrumentor: Any = AsyncPGInstrumentor
    asyncpg_instrumentor().uninstrument()
    if redis is not None:
        RedisInstrumentor.uninstrument_client(redis)
    active.provider.shutdown()


def _redis_peer(span: trace.Span, *_: Any) -> None:
    if span.is_recording():
        span.set_attribute("peer.service", "redis")


def instrument_http_client(client: Any, *, peer_service: str) -> None:
    """Trace an httpx client's calls (CLIENT spans, ``traceparent`` sent along)."""
    if _active is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    async def request_hook(span: trace.Span, _: Any) -> None:
        if span.is_recording():
            span.set_attribute("peer.service", peer_service)

    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=_active.provider, request_hook=request_hook
    )


def inject(carrier: dict[str, str]) -> None:
    """W3C ``traceparent`` (and baggage) of the current span into ``carrier``."""
    if _active is not None:
        propagate.inject(carrier)


def extract(carrier: Mapping[str, str]) -> Context:
    return propagate.extract(carrier)


def extract_with(carrier: T, getter: Getter[T]) -> Context:
    return propagate.extract(carrier, getter=getter)


def attach(current: trace.Span, parent: Context | None = None) -> object:
    """Make ``current`` the active span until ``detach`` (for spans not tied to one block).

    Under a span that is not sampled, client instrumentation is switched off: SQL and Redis
    calls then skip building span attributes they would throw away (the W3C context is still
    handed on where Agora does it itself, in events)."""
    context = trace.set_span_in_context(current, parent)
    if not current.get_span_context().trace_flags.sampled:
        context = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, context)
    return otel_context.attach(context)


def detach(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]


def current_span_context() -> trace.SpanContext:
    return trace.get_current_span().get_span_context()


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
    links: Sequence[Link] | None = None,
    attributes: Attributes = None,
) -> Iterator[trace.Span | None]:
    """A span around a block when tracing is on; nothing (None) when it is off."""
    active = _active
    if active is None:
        yield None
        return
    with active.tracer.start_as_current_span(
        name, context=context, kind=kind, links=links, attributes=attributes
    ) as current:
        yield current
