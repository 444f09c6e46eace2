"""Shared fixtures: the kmseal CLI (for keys and interoperability), local keys, and the test
servers scripts/test starts (OpenBao, moto). A test that needs a server and finds no address
fails; it never skips."""

import os
import pathlib
import subprocess
from typing import Dict, List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("KMSEAL_CLI", ROOT / "target" / "debug" / "kmseal"))
    if not path.exists():
        pytest.fail(f"the kmseal CLI is not at {path}: run scripts/test (or set KMSEAL_CLI)")
    return path


def run_cli(
    args: List[str],
    *,
    stdin: Optional[bytes] = None,
    env: Optional[Dict[str, str]] = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [str(cli_path()), *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kmseal {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}"
        )
    return proc


def server(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test, which starts the test servers")
    return value


def make_key(directory: pathlib.Path, name: str) -> str:
    path = directory / name
    run_cli(["keygen", "-o", str(path)])
    return f"local://{path}"


@pytest.fixture
def keydir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def key(keydir: pathlib.Path) -> str:
    return make_key(keydir, "a.key")


@pytest.fixture
def other_key(keydir: pathlib.Path) -> str:
    return make_key(keydir, "b.key")


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The OpenBao dev server's address (host:port), with its token in the environment."""
    addr = server("KMSEAL_TEST_VAULT_ADDR")
    monkeypatch.setenv("VAULT_TOKEN", os.environ.get("KMSEAL_TEST_VAULT_TOKEN", "root"))
    monkeypatch.setenv("VAULT_ADDR", f"http://{addr}")
    return addr


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's KMS and Secrets Manager; returns the ARN of the key scripts/test created."""
    endpoint = server("KMSEAL_TEST_AWS_ENDPOINT")
    arn = server("KMSEAL_TEST_AWS_KEY_ARN")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return arn
