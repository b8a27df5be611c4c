"""The flags' and the fault switch's Prometheus series, created at start with every known
label value at 0 (alerts and dashboards read them from the first scrape)."""

from __future__ import annotations

from prometheus_client import Counter

from agora.flags.catalog import CATALOG

FLAG_EVALUATIONS = Counter(
    "agora_feature_flag_evaluations_total",
    "Feature flag evaluations, by flag and the variant served ('default': the code's default).",
    ["flag", "variant"],
)
FAULTS_INJECTED = Counter(
    "agora_faults_injected_total",
    "Faults injected by the application-level fault switch, by dependency and kind.",
    ["dependency", "kind"],
)

DEPENDENCIES = ("postgres", "redis")
FAULT_KINDS = ("latency", "error")

for _spec in CATALOG:
    for _variant in _spec.variants:
        FLAG_EVALUATIONS.labels(flag=_spec.key, variant=_variant)
for _dependency in DEPENDENCIES:
    for _kind in FAULT_KINDS:
        FAULTS_INJECTED.labels(dependency=_dependency, kind=_kind)
