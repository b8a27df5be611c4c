"""Agora's four Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6 build).

`python deploy/grafana/generate.py` rewrites deploy/grafana/dashboards/*.json; a test checks
the committed files equal this output and runs every panel's query against a real Prometheus.
Queries read only series that exist from start-up (zero-initialised), so a quiet system draws
0, not "No data".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
ALERTMANAGER = DataSourceRef(type_val="alertmanager", uid="alertmanager")
SERVICE = 'service=~"$service"'
# New versions appearing: agora_build_info{version,revision} that was not there 5 minutes ago.
DEPLOYMENTS = (
    "group by (service, version, revision) (agora_build_info)"
    " unless group by (service, version, revision) (agora_build_info offset 5m)"
)

Query = tuple[str, str]  # (PromQL, legend)


def _targets(queries: list[Query]) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        for i, (expr, legend) in enumerate(queries)
    ]


def graph(title: str, unit: str, queries: list[Query], *, width: int = 12) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(8)
        .targets(_targets(queries))  # type: ignore[arg-type]
    )


def single(title: str, unit: str, query: Query, *, width: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(4)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .targets(_targets([query]))  # type: ignore[arg-type]
    )


def alert_list() -> db.Panel:
    """Firing and pending alerts of the Prometheus data source (rules live in Prometheus)."""
    return (
        db.Panel()
        .type("alertlist")
        .title("Alerts")
        .span(24)
        .height(6)
        .options(
            {
                "alertInstanceLabelFilter": "",
                "datasource": "prometheus",
                "groupMode": "default",
                "maxItems": 20,
                "sortOrder": 1,
                "stateFilter": {"firing": True, "pending": True, "normal": False},
                "viewMode": "list",
            }
        )
    )


def _variable(name: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(name)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def _dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(f"Agora / {title}")
        .uid(uid)
        .description(description)
        .tags(["agora"])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .annotation(
            db.AnnotationQuery()
            .name("Deployments")
            .datasource(PROMETHEUS)
            .expr(DEPLOYMENTS)
            .enable(True)
            .icon_color("blue")
        )
    )


def service_overview() -> db.Dashboard:
    rate = f"sum by (service) (rate(agora_http_requests_total{{{SERVICE}}}[$__rate_interval]))"
    errors = (
        f'sum by (service) (rate(agora_http_requests_total{{{SERVICE}, status=~"5.."}}'
        f"[$__rate_interval])) / {rate}"
    )

    def quantile(q: str, by: str) -> str:
        return (
            f"histogram_quantile({q}, sum by ({by}, le) (rate("
            f"agora_http_request_duration_seconds_bucket{{{SERVICE}}}[$__rate_interval])))"
        )

    return (
        _dashboard("agora-overview", "Service overview", "Rate, errors, latency, uptime, users.")
        .with_variable(_variable("service", "label_values(agora_http_requests_total, service)"))
        .with_panel(alert_list())
        .with_panel(
            single(
                "Uptime (time range)",
                "percentunit",
                (f'avg(avg_over_time(up{{job="agora", {SERVICE}}}[$__range]))', "uptime"),
            )
        )
        .with_panel(single("Active users (5 min)", "short", ("max(agora_active_users)", "users")))
        .with_panel(
            single(
                "Availability SLO (30 d target 99.9%)",
                "percentunit",
                (f"1 - max(agora:slo_availability_errors:ratio_rate1d{{{SERVICE}}})", "1 day"),
            )
        )
        .with_panel(
            single(
                "Build",
                "short",
                ("count by (version, revision) (agora_build_info)", "{{version}} {{revision}}"),
            )
        )
        .with_panel(graph("Request rate", "reqps", [(rate, "{{service}}")]))
        .with_panel(graph("Error rate (5xx)", "percentunit", [(errors, "{{service}}")]))
        .with_panel(
            graph(
                "Latency percentiles",
                "s",
                [
                    (quantile("0.5", "service"), "p50 {{service}}"),
                    (quantile("0.95", "service"), "p95 {{service}}"),
                    (quantile("0.99", "service"), "p99 {{service}}"),
                ],
            )
        )
        .with_panel(
            graph(
                "p95 latency by route",
                "s",
                [(quantile("0.95", "service, method, route"), "{{method}} {{route}}")],
            )
        )
        .with_panel(
            graph(
                "Requests by route and status",
                "reqps",
                [
                    (
                        f"sum by (route, status) (rate(agora_http_requests_total{{{SERVICE}}}"
                        "[$__rate_interval]))",
                        "{{route}} {{status}}",
                    )
                ],
                width=24,
            )
        )
    )


def infrastructure() -> db.Dashboard:
    return (
        _dashboard("agora-infrastructure", "Infrastructure", "Host, processes, pools.")
        .with_variable(_variable("instance", 'label_values(up{job="agora"}, instance)'))
        .with_panel(
            graph(
                "Host CPU",
                "percentunit",
                [
                    (
                        'sum by (mode) (rate(node_cpu_seconds_total{mode!="idle"}'
                        "[$__rate_interval])) / scalar(count(node_cpu_seconds_total"
                        '{mode="idle"}))',
                        "{{mode}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Process CPU",
                "percentunit",
                [
                    (
                        'rate(process_cpu_seconds_total{job="agora", instance=~"$instance"}'
                        "[$__rate_interval])",
                        "{{service}} {{instance}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Host memory",
                "bytes",
                [
                    ("node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes", "used"),
                    ("node_memory_MemAvailable_bytes", "available"),
                ],
            )
        )
        .with_panel(
            graph(
                "Process memory (RSS)",
                "bytes",
                [
                    (
                        'process_resident_memory_bytes{job="agora", instance=~"$instance"}',
                        "{{service}} {{instance}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Disk free",
                "percentunit",
                [
                    (
                        'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs"}'
                        ' / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs"}',
                        "{{mountpoint}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Network",
                "Bps",
                [
                    (
                        'sum by (device) (rate(node_network_receive_bytes_total{device!="lo"}'
                        "[$__rate_interval]))",
                        "in {{device}}",
                    ),
                    (
                        'sum by (device) (rate(node_network_transmit_bytes_total{device!="lo"}'
                        "[$__rate_interval]))",
                        "out {{device}}",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Database pool connections",
                "short",
                [
                    (
                        "sum by (service, pool, state) "
                        '(agora_db_pool_connections{instance=~"$instance"})',
                        "{{service}} {{pool}} {{state}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Open file descriptors",
                "short",
                [
                    (
                        'process_open_fds{job="agora", instance=~"$instance"}',
                        "{{service}} {{instance}}",
                    )
                ],
            )
        )
    )


def business() -> db.Dashboard:
    def per_hour(metric: str) -> str:
        return f"sum(increase({metric}[1h]))"

    return (
        _dashboard("agora-business", "Business", "Posts, notifications, connections, users.")
        .with_panel(
            single("Posts (last hour)", "short", (per_hour("agora_posts_created_total"), "posts"))
        )
        .with_panel(
            single(
                "Notifications (last hour)",
                "short",
                (per_hour("agora_notifications_sent_total"), "notifications"),
            )
        )
        .with_panel(
            single(
                "Registrations (last 24 h)",
                "short",
                ("sum(increase(agora_users_registered_total[24h]))", "users"),
            )
        )
        .with_panel(single("Active users (5 min)", "short", ("max(agora_active_users)", "users")))
        .with_panel(
            graph(
                "Posts, likes, follows per hour",
                "short",
                [
                    (per_hour("agora_posts_created_total"), "posts"),
                    (per_hour("agora_likes_total"), "likes"),
                    (per_hour("agora_follows_total"), "follows"),
                ],
            )
        )
        .with_panel(
            graph(
                "Notifications sent per hour",
                "short",
                [(per_hour("agora_notifications_sent_total"), "notifications")],
            )
        )
        .with_panel(
            graph(
                "WebSocket connections",
                "short",
                [("sum by (instance) (agora_websocket_connections)", "{{instance}}")],
            )
        )
        .with_panel(
            graph(
                "User growth (registrations per hour)",
                "short",
                [(per_hour("agora_users_registered_total"), "registrations")],
            )
        )
    )


def database() -> db.Dashboard:
    cache_rate = "sum by (cache, result) (rate(agora_cache_requests_total[$__rate_interval]))"
    return (
        _dashboard("agora-database", "Database", "Queries, pools, cache, replication.")
        .with_panel(
            graph(
                "Query duration p95 by operation",
                "s",
                [
                    (
                        "histogram_quantile(0.95, sum by (operation, pool, le) "
                        "(rate(agora_db_query_duration_seconds_bucket[$__rate_interval])))",
                        "{{pool}} {{operation}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Queries per second",
                "ops",
                [
                    (
                        "sum by (pool, operation) "
                        "(rate(agora_db_query_duration_seconds_count[$__rate_interval]))",
                        "{{pool}} {{operation}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Cache hit rate",
                "percentunit",
                [
                    (
                        'sum by (cache) (rate(agora_cache_requests_total{result="hit"}'
                        "[$__rate_interval])) / sum by (cache) (rate(agora_cache_requests_total"
                        '{result=~"hit|miss"}[$__rate_interval]))',
                        "{{cache}}",
                    )
                ],
            )
        )
        .with_panel(graph("Cache lookups", "ops", [(cache_rate, "{{cache}} {{result}}")]))
        .with_panel(
            graph(
                "Replication lag",
                "s",
                [("max by (application_name) (pg_replica_lag_seconds)", "{{application_name}}")],
            )
        )
        .with_panel(
            graph(
                "Pool waiting requests",
                "short",
                [
                    (
                        'sum by (service, pool) (agora_db_pool_connections{state="waiting"})',
                        "{{service}} {{pool}}",
                    )
                ],
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "service-overview": service_overview,
    "infrastructure": infrastructure,
    "business": business,
    "database": database,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        f"{name}.json": json.dumps(make().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, make in DASHBOARDS.items()
    }


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text)
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
