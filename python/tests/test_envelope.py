"""encrypt/decrypt and Encryptor/Decryptor: round trips, wrong keys and contexts, tampering,
truncation, garbage, signed messages, argument errors."""

import os

import pytest

import kmseal

SUITES = ["aes-256-gcm", "chacha20-poly1305"]
SIZES = [0, 1, 1023, 1024, 65536, 65537, 1 << 20]


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("signed", [False, True])
def test_round_trip_every_suite_signed_and_not(key, suite, signed):
    for size in SIZES:
        data = os.urandom(size)
        sealed = kmseal.encrypt(data, [key], {"app": "billing"}, suite=suite, signed=signed)
        assert size < 16 or data not in sealed
        with kmseal.decrypt(sealed, [key], {"app": "billing"}, require_signed=signed) as plain:
            assert len(plain) == size
            assert plain == data
            assert plain.expose_secret() == data


def test_keys_as_a_string_list_or_comma_list(key, other_key):
    sealed = kmseal.encrypt(b"x" * 100, f"{key}, {other_key}")
    # Either key opens a message wrapped for both.
    assert kmseal.decrypt(sealed, other_key) == b"x" * 100
    assert kmseal.decrypt(sealed, [key]) == b"x" * 100


def test_plaintext_of_every_bytes_like_type(key):
    data = os.urandom(5000)
    for value in [data, bytearray(data), memoryview(data), kmseal.SecretBytes(data)]:
        assert kmseal.decrypt(kmseal.encrypt(value, key), key) == data
    with pytest.raises(TypeError, match="encode"):
        kmseal.encrypt("text is not bytes", key)


def test_the_wrong_key_is_a_decrypt_error(key, other_key):
    sealed = kmseal.encrypt(b"for key a only", key)
    with pytest.raises(kmseal.DecryptError, match="no trusted KEK"):
        kmseal.decrypt(sealed, other_key)


def test_the_wrong_context_is_a_decrypt_error(key):
    sealed = kmseal.encrypt(b"tenant data", key, {"tenant": "acme"})
    with pytest.raises(kmseal.DecryptError, match="context mismatch"):
        kmseal.decrypt(sealed, key, {"tenant": "globex"})
    with pytest.raises(kmseal.DecryptError):
        kmseal.decrypt(sealed, key, {"tenant": "acme", "extra": "pair"})
    assert kmseal.decrypt(sealed, key, {}) == b"tenant data"


def test_every_bit_flip_is_refused(key):
    plaintext = b"the launch codes are 0000"
    sealed = kmseal.encrypt(plaintext, key)
    dec = kmseal.Decryptor(key)
    for i in range(len(sealed)):
        for bit in (0, 7):
            bad = bytearray(sealed)
            bad[i] ^= 1 << bit
            with pytest.raises(kmseal.DecryptError) as info:
                dec.decrypt(bytes(bad))
            assert b"launch" not in str(info.value).encode()


def test_every_truncation_is_refused(key):
    sealed = kmseal.encrypt(os.urandom(3 * 1024), key)
    dec = kmseal.Decryptor(key)
    for cut in range(len(sealed)):
        with pytest.raises(kmseal.DecryptError):
            dec.decrypt(sealed[:cut])
    with pytest.raises(kmseal.DecryptError):
        dec.decrypt(sealed + b"\x00")


def test_garbage_is_refused_not_a_crash(key):
    dec = kmseal.Decryptor(key)
    for junk in [b"", b"KMSEAL", b"KMSEAL" + os.urandom(200), os.urandom(1000)]:
        with pytest.raises(kmseal.DecryptError):
            dec.decrypt(junk)


def test_a_frame_from_another_message_is_refused(key):
    enc = kmseal.Encryptor(key, frame_size=1024)
    a = enc.encrypt(b"a" * 4096)
    b = enc.encrypt(b"b" * 4096)
    spliced = a[: len(a) // 2] + b[len(b) // 2 :]
    with pytest.raises(kmseal.DecryptError):
        kmseal.decrypt(spliced, key)


def test_require_signed_refuses_unsigned_messages(key):
    unsigned = kmseal.encrypt(b"v", key)
    with pytest.raises(kmseal.DecryptError, match="not signed"):
        kmseal.decrypt(unsigned, key, require_signed=True)
    signed = kmseal.encrypt(b"v", key, signed=True)
    assert kmseal.decrypt(signed, key, require_signed=True) == b"v"


def test_argument_errors_are_typed(key, tmp_path):
    with pytest.raises(kmseal.InvalidArgumentError, match="unknown suite"):
        kmseal.encrypt(b"x", key, suite="rot13")
    with pytest.raises(kmseal.InvalidKeyError):
        kmseal.encrypt(b"x", "nokms://whatever")
    with pytest.raises(kmseal.InvalidKeyError):
        kmseal.encrypt(b"x", f"local://{tmp_path}/missing.key")
    with pytest.raises(kmseal.InvalidArgumentError, match="no key URI"):
        kmseal.encrypt(b"x", [])
    with pytest.raises(kmseal.InvalidArgumentError):
        kmseal.encrypt(b"x", key, {"": "empty key"})
    with pytest.raises(kmseal.Error):
        kmseal.Encryptor(key, frame_size=0)
    # Errors are ValueErrors too, for callers that catch those.
    with pytest.raises(ValueError):
        kmseal.encrypt(b"x", "nokms://whatever")


def test_a_world_readable_key_file_is_refused(keydir, key):
    path = key[len("local://") :]
    os.chmod(path, 0o644)
    with pytest.raises(kmseal.InvalidKeyError, match="0600|group|others|mode"):
        kmseal.encrypt(b"x", key)


def test_encrypt_cache_reuses_data_keys_and_messages_still_open(key):
    enc = kmseal.Encryptor(key, {"svc": "api"}, cache=True)
    dec = kmseal.Decryptor(key, {"svc": "api"}, cache=True)
    sealed = [enc.encrypt(b"message %d" % i) for i in range(10)]
    stats = enc.cache_stats
    assert stats is not None and stats["hits"] == 9 and stats["kms_calls"] == 1, stats
    for i, s in enumerate(sealed):
        assert dec.decrypt(s) == b"message %d" % i
    assert dec.cache_stats["kms_calls"] == 1, dec.cache_stats
    assert kmseal.Encryptor(key).cache_stats is None
    # Distinct messages even with one data key.
    assert len(set(sealed)) == 10


def test_no_cache_means_a_fresh_data_key_per_message(key):
    enc = kmseal.Encryptor(key)
    a, b = enc.encrypt(b"same"), enc.encrypt(b"same")
    assert a != b


def test_reprs_name_no_keys_or_values(key):
    enc, dec = kmseal.Encryptor(key), kmseal.Decryptor(key)
    assert "local://" not in repr(enc) and "local://" not in repr(dec)


def test_both_backends_open_each_others_messages(key):
    data = os.urandom(300_000)
    for suite in SUITES:
        for a, b in [("aws-lc", "rustcrypto"), ("rustcrypto", "aws-lc")]:
            sealed = kmseal.Encryptor(key, suite=suite, backend=a).encrypt(data)
            assert kmseal.Decryptor(key, backend=b).decrypt(sealed) == data
    with pytest.raises(kmseal.InvalidArgumentError, match="backend"):
        kmseal.Encryptor(key, backend="openssl")
