"""The process's feature flags: an OpenFeature client bound to Agora's file provider.

One :class:`FeatureFlags` per process, built in the app's lifespan and reached through the
runtime (``agora.runtime.Infrastructure.flags``). OpenFeature keeps providers in a global
registry; each instance binds its provider to a domain of its own, so two apps in one
process (as the tests build) never see each other's flags.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider.no_op_provider import NoOpProvider

from agora.flags.catalog import FlagSpec
from agora.flags.metrics import FLAG_EVALUATIONS
from agora.flags.provider import FileProvider, FlagFileError
from agora.observability.logging import get_logger

log = get_logger(__name__)

_domains = itertools.count(1)


class CountingHook(Hook):
    """Counts every evaluation, the variant served included (``default`` when the flag is
    not in the file or the evaluation failed)."""

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,  # noqa: ARG002  # OpenFeature's hook signature
    ) -> None:
        FLAG_EVALUATIONS.labels(
            flag=hook_context.flag_key, variant=details.variant or "default"
        ).inc()


class FeatureFlags:
    def __init__(
        self, provider: FileProvider, *, name: str = "agora", reload_s: float = 2.0
    ) -> None:
        self.provider = provider
        self.reload_s = reload_s
        self._domain = f"{name}-{next(_domains)}"
        api.set_provider_and_wait(provider, domain=self._domain)
        self._client = api.get_client(domain=self._domain)
        self._client.add_hooks([CountingHook()])
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def from_file(
        cls, path: str | None, *, name: str = "agora", reload_s: float = 2.0
    ) -> FeatureFlags:
        return cls(FileProvider(path), name=name, reload_s=reload_s)

    def enabled(self, spec: FlagSpec, *, user_id: str | None, **attributes: str) -> bool:
        """A boolean flag for one user: in a percentage rollout the same user always gets
        the same answer for a given percentage (and stays in as it rises)."""
        context = EvaluationContext(targeting_key=user_id, attributes=attributes)
        return self._client.get_boolean_value(spec.key, False, context)

    def object_value(
        self, spec: FlagSpec, *, targeting_key: str | None, **attributes: str
    ) -> Mapping[str, Any]:
        context = EvaluationContext(targeting_key=targeting_key, attributes=attributes)
        value = self._client.get_object_value(spec.key, {}, context)
        return value if isinstance(value, Mapping) else {}

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each reload that changed the flags, synchronously in the
        reloading task (OpenFeature's own PROVIDER_CONFIGURATION_CHANGED handlers run on a
        thread pool; a listener here sees the new flags before the next request does)."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Reread the file if it changed; a malformed file is logged and the flags in force
        stay (a typo must not switch every flag back to its default)."""
        problem: str | None = None
        try:
            changed = self.provider.reload_if_changed()
        except FlagFileError as exc:
            problem = str(exc)
        if problem is not None:
            # The message says what is wrong and where; a traceback would add nothing.
            log.error("flags file not reloaded; the previous flags stay in force", error=problem)
            return False
        if changed:
            log.info("flags reloaded", path=self.provider.path, flags=sorted(self.provider.flags))
            for listener in self._listeners:
                listener()
            self.provider.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=sorted(self.provider.flags))
            )
        return changed

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Poll the file every ``reload_s`` seconds while the app runs."""
        if self.provider.path is None:
            yield
            return

        async def poll() -> None:
            while True:
                await asyncio.sleep(self.reload_s)
                self.reload()

        task = asyncio.create_task(poll(), name="flags-reload")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        """Unbind this instance's provider from OpenFeature's registry."""
        api.set_provider(NoOpProvider(), domain=self._domain)
