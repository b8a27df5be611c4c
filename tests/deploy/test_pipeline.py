"""The CI/CD files checked offline: the workflows (actionlint, the GitHub-workflow schema, a
timeout on every job, no script injection), the Dockerfile (hadolint), the deploy scripts
(shellcheck) and the release settings (python-semantic-release computes the next version)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
BIN = ROOT / ".venv/bin"
# Expressions whose value an outsider controls (branch names, titles, bodies, inputs...): in a
# `run:` script they are pasted into the shell before it runs. They belong in `env:`.
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
SAFE_IN_SCRIPTS = re.compile(
    r"^\s*(secrets\.GITHUB_TOKEN|runner\.\w+|matrix\.\w+|steps\.\w+\.outputs\.\w+)\s*$"
)


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: make install / .ci/run install it"
    return found


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)


def injections(workflow: dict[str, Any]) -> list[str]:
    """Every expression inside a `run:` script, except those no outsider can influence."""
    found: list[str] = []
    for job_name, job in workflow.get("jobs", {}).items():
        for step in job.get("steps", []):
            found.extend(
                f"{job_name}: ${{{{{expression}}}}}"
                for expression in EXPRESSION.findall(step.get("run", ""))
                if not SAFE_IN_SCRIPTS.match(expression)
            )
    return found


def test_actionlint() -> None:
    result = run(tool("actionlint"), *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"]
)
def test_workflow_schemas(schema: str) -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", schema, *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_schema() -> None:
    result = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.dependabot",
        str(ROOT / ".github/dependabot.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_script_injection_and_least_privilege(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert injections(workflow) == []
    assert workflow["permissions"] == {"contents": "read"}  # jobs widen only what they need


def test_the_injection_check_catches_event_fields() -> None:
    workflow = {
        "jobs": {
            "j": {
                "steps": [
                    {"run": 'echo "${{ github.event.pull_request.title }}"'},
                    {"run": "git checkout ${{ github.head_ref }}"},
                    {"run": "deploy ${{ inputs.digest }}"},
                    {"run": 'echo "$TITLE"', "env": {"TITLE": "${{ github.event.issue.title }}"}},
                    {"run": "echo ${{ steps.meta.outputs.version }}"},
                ]
            }
        }
    }
    assert injections(workflow) == [
        "j: ${{ github.event.pull_request.title }}",
        "j: ${{ github.head_ref }}",
        "j: ${{ inputs.digest }}",
    ]


def test_the_pipeline_has_its_stages() -> None:
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert {"lint", "test", "security", "image"} <= set(ci["jobs"])
    image_steps = ci["jobs"]["image"]["steps"]
    assert any("linux/arm64" in str(s.get("with", {}).get("platforms", "")) for s in image_steps)
    assert any("trivy" in s.get("uses", "") for s in image_steps)
    deploy = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    assert deploy["jobs"]["production"]["environment"]["name"] == "production"
    assert deploy["jobs"]["staging"]["environment"]["name"] == "staging"


def test_hadolint() -> None:
    result = run(tool("hadolint"), str(ROOT / "Dockerfile.production"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_scripts() -> None:
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.sh"))
    result = run(tool("shellcheck"), *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_release_version_from_conventional_commits(tmp_path: Path) -> None:
    (tmp_path / "src/agora").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "src/agora/__init__.py", tmp_path / "src/agora")
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    run("git", "init", "-q", "-b", "main", cwd=tmp_path)
    run(*git, "add", "-A", cwd=tmp_path)
    run(*git, "commit", "-qm", "chore: start", cwd=tmp_path)
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    run("git", "tag", f"v{version[1]}", cwd=tmp_path)
    (tmp_path / "f").write_text("x")
    run(*git, "add", "f", cwd=tmp_path)
    run(*git, "commit", "-qm", "feat: something new", cwd=tmp_path)
    run("git", "remote", "add", "origin", "https://github.com/agora-social/agora.git", cwd=tmp_path)
    result = run(tool("semantic-release"), "--noop", "version", "--print", cwd=tmp_path)
    major, minor, _ = map(int, version[1].split("."))
    assert result.stdout.strip().splitlines()[-1] == f"{major}.{minor + 1}.0", result.stderr
