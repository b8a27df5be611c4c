import pytest

from agora.config import DEFAULT_PORTS
from agora.healthcheck import SERVICE_PORTS, served_port


def test_ports_are_the_contract_ports() -> None:
    assert SERVICE_PORTS == DEFAULT_PORTS


@pytest.mark.parametrize(
    ("argv", "port"),
    [
        (["/opt/agora/bin/python3", "/opt/agora/bin/agora", "serve", "auth"], 8080),
        (["agora", "serve", "realtime", "--host", "::"], 8082),
        (["agora", "serve", "posts", "--port", "9001"], 9001),
        (["agora", "serve", "posts", "--port=9002", "--host", "::"], 9002),
        (["agora", "migrate"], None),
        (["agora", "serve"], None),
    ],
)
def test_port_of_the_main_process(argv: list[str], port: int | None) -> None:
    assert served_port(argv) == port
