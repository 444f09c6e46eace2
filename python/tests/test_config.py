"""open_config and Secrets on documents the CLI sealed: values, tampering, requirements,
format detection, previous values."""

import os
import pathlib

import pytest

import kmseal
from conftest import run_cli

YAML = """\
database:
  host: db.internal
  port: 5432
  password: Zr9-long-enough-database-password
jwt:
  secret: {jwt}
debug: false
"""


def seal(path: pathlib.Path, key: str, *extra: str) -> None:
    run_cli(["config", "encrypt", "-q", "-k", key, "--encrypt", "*password", "--encrypt", "secret",
             *extra, str(path)])


@pytest.fixture
def doc(tmp_path, key):
    path = tmp_path / "app.yaml"
    path.write_text(YAML.format(jwt="Kq8bX2mVt7YwL4nP0sR6uE1zC3aD5fGhJ9kMoQ"))
    seal(path, key)
    return path


def test_values_by_path_secrets_locked_plain_as_written(doc, key):
    text = doc.read_text()
    assert "Zr9-long" not in text and "db.internal" in text
    with kmseal.open_config(doc, [key]) as cfg:
        assert cfg.is_secret("database.password") and not cfg.is_secret("database.host")
        pw = cfg.secret("database.password")
        assert isinstance(pw, kmseal.SecretString)
        assert pw.expose_secret() == "Zr9-long-enough-database-password"
        assert cfg.plain("database.port") == "5432" and cfg.plain("debug") == "false"
        assert set(cfg.paths()) >= {"database.host", "database.password", "jwt.secret"}
        assert "jwt.secret" in cfg and "nope" not in cfg
        with pytest.raises(KeyError):
            cfg.secret("nope")
        with pytest.raises(kmseal.ConfigError, match="plain"):
            cfg.secret("database.host")
        with pytest.raises(kmseal.ConfigError, match="encrypted"):
            cfg.plain("database.password")
        env = cfg.env()
        assert env["DATABASE_PASSWORD"] == b"Zr9-long-enough-database-password"
        assert env["DATABASE_HOST"] == b"db.internal"
        assert "Zr9" not in repr(cfg) and "Zr9" not in repr(env)
        assert cfg.set_at("database.password") is not None
    with pytest.raises(kmseal.WipedError):
        cfg.secret("database.password")


def test_keys_from_kmseal_key_by_default(doc, key, monkeypatch):
    monkeypatch.setenv("KMSEAL_KEY", key)
    assert kmseal.open_config(str(doc)).secret("jwt.secret").expose_secret().startswith("Kq8b")
    monkeypatch.delenv("KMSEAL_KEY")
    with pytest.raises(kmseal.InvalidKeyError, match="KMSEAL_KEY"):
        kmseal.open_config(doc)


def test_the_wrong_key_cannot_open(doc, other_key):
    with pytest.raises(kmseal.DecryptError):
        kmseal.open_config(doc, other_key)


def test_tampering_is_refused(doc, key):
    original = doc.read_text()
    for before, after in [
        ("db.internal", "evil.internal"),  # a plain value changed
        ("port: 5432", "port: 5433"),
        ("debug: false", "debug: true"),
    ]:
        assert before in original
        doc.write_text(original.replace(before, after))
        with pytest.raises(kmseal.TamperedError) as info:
            kmseal.open_config(doc, key)
        assert isinstance(info.value, kmseal.DecryptError)
        assert "Zr9" not in str(info.value)
    # Swapping two encrypted values.
    lines = original.splitlines()
    pw = next(i for i, l in enumerate(lines) if "password:" in l)
    js = next(i for i, l in enumerate(lines) if "secret:" in l)
    a, b = lines[pw].split(": ", 1), lines[js].split(": ", 1)
    lines[pw], lines[js] = f"{a[0]}: {b[1]}", f"{b[0]}: {a[1]}"
    doc.write_text("\n".join(lines) + "\n")
    with pytest.raises(kmseal.DecryptError):
        kmseal.open_config(doc, key)


def test_garbage_and_truncated_documents_are_errors(doc, key, tmp_path):
    original = doc.read_text()
    for cut in range(0, len(original), max(1, len(original) // 40)):
        doc.write_text(original[:cut])
        with pytest.raises(kmseal.Error):
            kmseal.open_config(doc, key, format="yaml")
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(kmseal.Error):
        kmseal.open_config(junk, key)


def test_requirements_travel_with_the_document_and_fail_fast(tmp_path, key):
    path = tmp_path / "svc.yaml"
    path.write_text(YAML.format(jwt="changeme"))
    seal(path, key)
    run_cli(["config", "require", "-q", "-k", key, str(path), "jwt.secret", "--min-len", "32"])
    with pytest.raises(kmseal.RequirementError) as info:
        kmseal.open_config(path, key)
    problems = {(f.path, f.problem) for f in info.value.findings}
    assert ("jwt.secret", "too_short") in problems or ("jwt.secret", "placeholder") in problems
    assert "changeme" not in str(info.value)
    assert all("changeme" not in f.message for f in info.value.findings)
    # check=False opens it; check() then reports the same, and more rules can be given.
    cfg = kmseal.open_config(path, key, check=False)
    assert cfg.requirements() == ["jwt.secret:min_len=32"]
    with pytest.raises(kmseal.RequirementError):
        cfg.check()
    with pytest.raises(kmseal.RequirementError) as info:
        cfg.check(["api.token", "database.password:min_len=64"])
    problems = {(f.path, f.problem) for f in info.value.findings}
    assert ("api.token", "missing") in problems
    assert ("database.password", "too_short") in problems
    found = cfg.findings(["database.password:min_len=8"])
    assert all(isinstance(f, kmseal.Finding) for f in found)
    assert not any(f.path == "database.password" for f in found)
    with pytest.raises(kmseal.ConfigError):
        cfg.check(["bad:rule=wat"])


def test_format_from_content_when_the_name_does_not_say(doc, key, tmp_path):
    odd = tmp_path / "secrets.sealed"
    odd.write_bytes(doc.read_bytes())
    assert kmseal.open_config(odd, key).plain("database.host") == "db.internal"
    unknown = tmp_path / "plain.txt"
    unknown.write_text("a: 1\n")
    with pytest.raises(kmseal.ConfigError, match="cannot tell the format"):
        kmseal.open_config(unknown, key)


def test_an_unsealed_document_needs_consent(tmp_path, key):
    path = tmp_path / "refs.env"
    path.write_text("LOG_LEVEL=debug\n")
    with pytest.raises(kmseal.ConfigError, match="not sealed"):
        kmseal.open_config(path, key)
    assert kmseal.open_config(path, unsealed=True).plain("LOG_LEVEL") == "debug"


def test_previous_value_during_a_rotation(doc, key):
    run_cli(["config", "set", "-q", "-k", key, "--keep-previous", "24h", str(doc), "jwt.secret", "-"],
            stdin=b"Rotated-jwt-secret-value-0123456789abcdef\n")
    cfg = kmseal.open_config(doc, key)
    assert cfg.secret("jwt.secret").expose_secret() == "Rotated-jwt-secret-value-0123456789abcdef"
    prev = cfg.previous("jwt.secret")
    assert prev is not None and prev.expose_secret().startswith("Kq8b")
    assert cfg.previous("database.password") is None
    assert "JWT_SECRET_PREVIOUS" in cfg.env()
