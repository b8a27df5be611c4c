# The scenarios' names, for the command line: `agora.gameday.scenarios` needs the dev tools
# (psutil, the embedded servers), which the production image's `agora` must not import.
SCENARIO_NAMES = (
    "kill-instance",
    "stop-postgres",
    "stop-redis",
    "sentinel-failover",
    "gateway-latency",
    "gateway-errors",
    "pool-exhaustion",
    "websocket-disconnect",
)
