"""``agora backup ...`` as an operator runs it: a subprocess with the test's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Protocol


class HasVars(Protocol):
    @property
    def vars(self) -> dict[str, str]: ...


def agora(
    env: HasVars, *args: str, extra: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # our own CLI, arguments from the test
        [sys.executable, "-m", "agora", "backup", *args],
        env={**os.environ, **env.vars, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done
