"""The same bytes as the CLI (and so the Rust library): Python encrypts, the CLI decrypts, and
back, for every suite, signed and unsigned, one key and two."""

import os

import pytest

import kmseal
from conftest import run_cli

SUITES = ["aes-256-gcm", "chacha20-poly1305"]


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("signed", [False, True])
def test_python_to_cli_and_cli_to_python(tmp_path, key, other_key, suite, signed):
    data = os.urandom(150_000)
    flags = ["--signed"] if signed else []
    # Python → CLI, wrapped for two keys; the CLI opens it with the second.
    sealed = kmseal.encrypt(data, [key, other_key], {"app": "billing"}, suite=suite, signed=signed)
    (tmp_path / "py.kmseal").write_bytes(sealed)
    run_cli(["decrypt", "-q", "-k", other_key, "-c", "app=billing", *(
        ["--require-signed"] if signed else []), str(tmp_path / "py.kmseal"),
        "-o", str(tmp_path / "py.out")])
    assert (tmp_path / "py.out").read_bytes() == data
    # CLI → Python.
    (tmp_path / "plain.bin").write_bytes(data)
    run_cli(["encrypt", "-q", "-k", key, "-k", other_key, "-c", "app=billing", "--suite", suite,
             *flags, str(tmp_path / "plain.bin"), "-o", str(tmp_path / "cli.kmseal")])
    cli_sealed = (tmp_path / "cli.kmseal").read_bytes()
    assert kmseal.decrypt(cli_sealed, other_key, {"app": "billing"}, require_signed=signed) == data
    # Streams read what the CLI wrote, and the CLI reads what streams write.
    kmseal.Decryptor(key).decrypt_stream(tmp_path / "cli.kmseal", tmp_path / "stream.out")
    assert (tmp_path / "stream.out").read_bytes() == data
    kmseal.Encryptor(key, suite=suite, signed=signed).encrypt_stream(
        tmp_path / "plain.bin", tmp_path / "stream.kmseal")
    out = run_cli(["decrypt", "-q", "-k", key, str(tmp_path / "stream.kmseal"),
                   "-o", str(tmp_path / "stream2.out")])
    assert out.returncode == 0 and (tmp_path / "stream2.out").read_bytes() == data


def test_the_cli_refuses_what_python_tampered_and_vice_versa(tmp_path, key):
    sealed = bytearray(kmseal.encrypt(b"x" * 5000, key))
    sealed[-20] ^= 1
    (tmp_path / "bad.kmseal").write_bytes(bytes(sealed))
    proc = run_cli(["decrypt", "-q", "-k", key, str(tmp_path / "bad.kmseal"), "-o",
                    str(tmp_path / "bad.out")], check=False)
    assert proc.returncode == 3 and not (tmp_path / "bad.out").exists()
    with pytest.raises(kmseal.DecryptError):
        kmseal.decrypt(bytes(sealed), key)


def test_a_config_the_cli_sealed_opens_in_python_as_the_cli_decrypts_it(tmp_path, key):
    for name, text in [
        ("app.env", "API_TOKEN=tok-0123456789abcdef0123\nLOG_LEVEL=info\n"),
        ("app.json", '{"api": {"token": "tok-0123456789abcdef0123"}, "level": "info"}\n'),
        ("app.toml", 'level = "info"\n[api]\ntoken = "tok-0123456789abcdef0123"\n'),
    ]:
        path = tmp_path / name
        path.write_text(text)
        run_cli(["config", "encrypt", "-q", "-k", key, "--encrypt", "*TOKEN", "--encrypt", "token",
                 str(path)])
        assert "tok-0123" not in path.read_text()
        cfg = kmseal.open_config(path, key)
        token_path = "API_TOKEN" if name.endswith(".env") else "api.token"
        assert cfg.secret(token_path).expose_secret() == "tok-0123456789abcdef0123", name
        decrypted = run_cli(["config", "decrypt", "-q", "-k", key, str(path)]).stdout.decode()
        assert "tok-0123456789abcdef0123" in decrypted
