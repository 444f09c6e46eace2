"""Key URIs and secret references against the servers scripts/test starts: OpenBao (transit
and KV) and moto (KMS and Secrets Manager). Without them these tests fail; they never skip."""

import os

import pytest

import kmseal
from conftest import run_cli


def test_vault_transit_round_trip_and_errors(vault_env, key):
    uri = f"vault+http://{vault_env}/transit/keys/kmseal-e2e"
    sealed = kmseal.encrypt(b"wrapped by OpenBao", [uri, key], {"svc": "py"})
    assert kmseal.decrypt(sealed, uri, {"svc": "py"}) == b"wrapped by OpenBao"
    # The local key opens it too: both wrapped the data key.
    assert kmseal.decrypt(sealed, key, {"svc": "py"}) == b"wrapped by OpenBao"
    missing = f"vault+http://{vault_env}/transit/keys/no-such-key-{os.getpid()}"
    with pytest.raises(kmseal.KmsError) as info:
        kmseal.encrypt(b"x", missing)
    assert info.value.kind in {"not_found", "access_denied", "other"}
    assert info.value.provider == "vault"


def test_vault_wrong_token_is_access_denied(vault_env, monkeypatch):
    uri = f"vault+http://{vault_env}/transit/keys/kmseal-e2e"
    monkeypatch.setenv("VAULT_TOKEN", "wrong-token")
    with pytest.raises(kmseal.KmsError) as info:
        kmseal.encrypt(b"x", uri)
    assert info.value.kind == "access_denied" and not info.value.retryable
    assert "wrong-token" not in str(info.value)


def test_aws_kms_on_moto(aws_env):
    uri = f"aws-kms://{aws_env}"
    enc = kmseal.Encryptor(uri, {"tenant": "acme"}, cache=True)
    dec = kmseal.Decryptor(uri, {"tenant": "acme"}, cache=True)
    messages = [enc.encrypt(b"row %d" % i) for i in range(5)]
    assert [dec.decrypt(m) for m in messages] == [b"row %d" % i for i in range(5)]
    assert enc.cache_stats["kms_calls"] == 1 and dec.cache_stats["kms_calls"] == 1


def test_get_secret_from_openbao_kv(vault_env):
    ref = f"vault-kv+http://{vault_env}/secret/py/db-{os.getpid()}"
    run_cli(["secret", "put", "-q", ref, "--field", "password", "-"], stdin=b"kv-pass-123456\n")
    value = kmseal.get_secret(ref + "#password")
    assert isinstance(value, kmseal.SecretBytes) and value == b"kv-pass-123456"
    with pytest.raises(kmseal.StoreError) as info:
        kmseal.get_secret(f"vault-kv+http://{vault_env}/secret/py/missing-{os.getpid()}")
    assert info.value.kind == "not_found"
    with pytest.raises(kmseal.StoreError) as info:
        kmseal.get_secret("nope://x")
    assert info.value.kind == "invalid_reference"


def test_get_secret_from_aws_secrets_manager(aws_env):
    ref = f"aws-sm://kmseal/py/api-{os.getpid()}"
    run_cli(["secret", "put", "-q", ref, "--field", "API_KEY", "-"], stdin=b"sm-key-0987654321\n")
    assert kmseal.get_secret(ref + "#API_KEY") == b"sm-key-0987654321"


def test_open_config_resolves_references(vault_env, key, tmp_path):
    ref = f"vault-kv+http://{vault_env}/secret/py/app-{os.getpid()}"
    run_cli(["secret", "put", "-q", ref, "--field", "token", "-"], stdin=b"ref-token-abcdef0123456789\n")
    path = tmp_path / "app.yaml"
    path.write_text(f"api:\n  token: ref+{ref}#token\n  url: https://api.internal\n")
    run_cli(["config", "encrypt", "-q", "-k", key, "--encrypt", "token", str(path)])
    cfg = kmseal.open_config(path, key)
    assert cfg.secret("api.token").expose_secret() == "ref-token-abcdef0123456789"
    unresolved = kmseal.open_config(path, key, resolve=False)
    assert unresolved.secret("api.token").expose_secret().startswith("ref+vault-kv")
    path.write_text(f"api:\n  token: ref+{ref}-missing#token\n")
    run_cli(["config", "encrypt", "-q", "-k", key, "--encrypt", "token", str(path)])
    with pytest.raises(kmseal.StoreError):
        kmseal.open_config(path, key)
