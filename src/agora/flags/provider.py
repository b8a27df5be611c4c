"""An OpenFeature provider that needs no flag server: flags from a JSON file
(``AGORA_FLAGS_FILE``), evaluated in process, reloaded when the file changes.

The file (docs/flags.md)::

    {"flags": {
      "notification-like-count": {
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "rollout": {"variant": "on", "percent": 25},
        "match": {"service": ["posts"]}
      }}}

A percentage rollout is sticky per targeting key (the user id, or the instance id for the
fault switch): the key's bucket is a hash of the flag key and the targeting key, so it never
changes, and raising the percentage only ever adds keys to the rollout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import TypeMismatchError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

T = TypeVar("T")
_MAX_PERCENT = 100


class FlagFileError(ValueError):
    """The flags file is missing or malformed; the message says where."""


def bucket(flag_key: str, targeting_key: str) -> float:
    """Where ``targeting_key`` falls for ``flag_key``, uniform in [0, 100).

    The flag key is part of the hash so that the first 10% of one rollout are not the
    first 10% of every rollout."""
    digest = hashlib.sha256(f"{flag_key}\x00{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


@dataclass(frozen=True, slots=True)
class Rollout:
    variant: str
    percent: float


@dataclass(frozen=True, slots=True)
class FileFlag:
    variants: Mapping[str, Any]
    default_variant: str
    enabled: bool = True
    rollout: Rollout | None = None
    # Context attributes that must match (any listed value) for the rollout to apply.
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def pick(self, key: str, context: EvaluationContext | None) -> tuple[str, str]:
        """The variant for ``context`` and the OpenFeature reason."""
        rollout = self.rollout
        if rollout is None:
            return self.default_variant, Reason.STATIC
        attributes = context.attributes if context is not None else {}
        for name, allowed in self.match.items():
            if str(attributes.get(name)) not in allowed:
                return self.default_variant, Reason.TARGETING_MATCH
        targeting_key = context.targeting_key if context is not None else None
        if not targeting_key:
            return self.default_variant, Reason.DEFAULT
        if bucket(key, targeting_key) < rollout.percent:
            return rollout.variant, Reason.SPLIT
        return self.default_variant, Reason.SPLIT


def _rollout(where: str, spec: object, variants: Mapping[str, Any]) -> Rollout:
    if not isinstance(spec, dict) or spec.get("variant") not in variants:
        raise FlagFileError(f"{where}: 'rollout.variant' must name one of its variants")
    percent = spec.get("percent")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int | float)
        or not 0 <= percent <= _MAX_PERCENT
    ):
        raise FlagFileError(f"{where}: 'rollout.percent' must be a number from 0 to 100")
    return Rollout(variant=str(spec["variant"]), percent=float(percent))


def _flag(key: str, raw: object) -> FileFlag:
    where = f"flag {key!r}"
    if not isinstance(raw, dict):
        raise FlagFileError(f"{where}: must be an object")
    unknown = set(raw) - {"variants", "defaultVariant", "state", "rollout", "match"}
    if unknown:
        raise FlagFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise FlagFileError(f"{where}: 'variants' must be a non-empty object")
    default_variant = raw.get("defaultVariant")
    if default_variant not in variants:
        raise FlagFileError(f"{where}: 'defaultVariant' must name one of its variants")
    state = raw.get("state", "ENABLED")
    if state not in ("ENABLED", "DISABLED"):
        raise FlagFileError(f"{where}: 'state' must be ENABLED or DISABLED")
    rollout = _rollout(where, raw["rollout"], variants) if "rollout" in raw else None
    match: dict[str, tuple[str, ...]] = {}
    for name, values in (raw.get("match") or {}).items():
        listed = values if isinstance(values, list) else [values]
        match[str(name)] = tuple(str(v) for v in listed)
    return FileFlag(
        variants=dict(variants),
        default_variant=str(default_variant),
        enabled=state == "ENABLED",
        rollout=rollout,
        match=match,
    )


def parse_flags(text: str, *, source: str = "flags file") -> dict[str, FileFlag]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlagFileError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
        raise FlagFileError(f'{source}: must be a JSON object {{"flags": {{...}}}}')
    flags = {}
    for key, raw in data["flags"].items():
        try:
            flags[str(key)] = _flag(str(key), raw)
        except FlagFileError as exc:
            raise FlagFileError(f"{source}: {exc}") from None
    return flags


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlagFileError(f"cannot read the flags file {path}: {exc.strerror}") from None


def load_flag_file(path: str) -> dict[str, FileFlag]:
    return parse_flags(_read(path), source=path)


class FileProvider(AbstractProvider):
    """Flags from ``path`` (or none: every flag evaluates to the code's default)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._flags: dict[str, FileFlag] = {}
        self._text: str | None = None
        if path is not None:
            self._text = _read(path)
            self._flags = parse_flags(self._text, source=path)

    @property
    def flags(self) -> Mapping[str, FileFlag]:
        return self._flags

    def reload_if_changed(self) -> bool:
        """Reread the file; True when the flags changed. A malformed file raises
        :class:`FlagFileError` and the old flags stay.

        The content is compared, not the modification time: a small file read every few
        seconds costs nothing, and two writes within one timestamp tick are not missed."""
        if self.path is None:
            return False
        text = _read(self.path)
        if text == self._text:
            return False
        flags = parse_flags(text, source=self.path)
        self._text = text
        if flags == self._flags:
            return False
        self._flags = flags
        return True

    def get_metadata(self) -> Metadata:
        return Metadata(name="agora-file")

    def _resolve(
        self, key: str, default: T, context: EvaluationContext | None, kinds: tuple[type, ...]
    ) -> FlagResolutionDetails[T]:
        flag = self._flags.get(key)
        if flag is None:
            return FlagResolutionDetails(value=default, reason=Reason.DEFAULT)
        if not flag.enabled:
            return FlagResolutionDetails(value=default, reason=Reason.DISABLED)
        variant, reason = flag.pick(key, context)
        value = flag.variants[variant]
        # bool is an int: a boolean flag must hold a boolean, a number flag must not.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise TypeMismatchError(f"variant {variant!r} of {key!r} is a {type(value).__name__}")
        return FlagResolutionDetails(value=cast(T, value), variant=variant, reason=reason)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, (bool,))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, (str,))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, (int,))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, (int, float))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, (dict, list))
