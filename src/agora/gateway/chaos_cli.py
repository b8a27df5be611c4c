"""``agora chaos``: switch the gateway's fault injection on and off (docs/gameday.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from agora.config import ConfigError, load_settings

chaos_app = typer.Typer(
    help="Fault injection at the gateway: delay or abort a share of a route's requests "
    "(Envoy's fault filter through its loopback admin runtime). Off by default; refused in "
    "production unless AGORA_GATEWAY_FAULT_INJECTION=true.",
    no_args_is_help=True,
)

RouteOption = Annotated[
    list[str] | None,
    typer.Option(
        "--route",
        help="auth, auth-write, posts, posts-write, realtime, realtime-write, realtime-ws or "
        "all (repeatable; default all)",
    ),
]
AdminOption = Annotated[
    str | None,
    typer.Option(help="Gateway admin URL (default http://127.0.0.1:$AGORA_GATEWAY_ADMIN_PORT)"),
]


def _run(admin: str | None, action: str, **kwargs: object) -> None:
    from agora.gateway.chaos import Chaos, Fault, check_allowed, routes_for

    try:
        settings = load_settings()
        check_allowed(settings)
        url = admin or f"http://127.0.0.1:{settings.gateway_admin_port}"
        with Chaos(url) as chaos:
            routes = routes_for(list(kwargs.pop("routes", None) or []))  # type: ignore[call-overload]
            if action == "off":
                chaos.clear(routes)
                typer.echo(f"fault injection off on {', '.join(routes)}")
            elif action == "status":
                for key, value in chaos.active().items():
                    typer.echo(f"{key} = {value}")
                for name, count in chaos.injected().items():
                    typer.echo(f"{name}: {count}")
            else:
                for route in routes:
                    fault = Fault(route, action, **kwargs)  # type: ignore[arg-type]
                    chaos.set(fault)
                    unit = "ms delay" if action == "delay" else "status"
                    typer.echo(f"{route}: {fault.percent}% of requests → {fault.value} {unit}")
    except ConfigError as exc:
        typer.secho(f"agora: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@chaos_app.command("delay")
def delay(
    percent: Annotated[int, typer.Option(help="Share of requests delayed (0-100)")],
    ms: Annotated[int, typer.Option(help="Added latency in milliseconds")] = 500,
    route: RouteOption = None,
    admin: AdminOption = None,
) -> None:
    """Delay a share of a route's requests at the gateway."""
    _run(admin, "delay", routes=route, percent=percent, value=ms)


@chaos_app.command("abort")
def abort(
    percent: Annotated[int, typer.Option(help="Share of requests answered with --status")],
    status: Annotated[int, typer.Option(help="HTTP status of the injected reply")] = 503,
    route: RouteOption = None,
    admin: AdminOption = None,
) -> None:
    """Answer a share of a route's requests with an error at the gateway (never forwarded)."""
    _run(admin, "abort", routes=route, percent=percent, value=status)


@chaos_app.command("off")
def off(route: RouteOption = None, admin: AdminOption = None) -> None:
    """Switch every fault off (or only those of --route)."""
    _run(admin, "off", routes=route)


@chaos_app.command("status")
def status(admin: AdminOption = None) -> None:
    """The fault runtime keys set now and Envoy's injected-fault counters."""
    _run(admin, "status")
