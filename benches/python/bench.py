"""kmseal vs its Python peers, side by side in one process; medians of rounds that visit every
contender in turn (so machine noise lands on all of them alike). Run by scripts/bench-python;
prints a Markdown table and the ratios BENCHMARKS.md quotes. Never run by the tests."""

import base64
import os
import statistics
import sys
import time

import kmseal

SIZES = {"1k": 1 << 10, "1m": 1 << 20, "64m": 64 << 20}
# Calls per timed batch and rounds, by size: enough work per batch to dwarf the timer.
PLAN = {"1k": (200, 15), "1m": (4, 11), "64m": (1, 5)}


def contenders():
    os.environ["KMSEAL_BENCH_KEY"] = base64.b64encode(os.urandom(32)).decode()
    key = "local://env:KMSEAL_BENCH_KEY"
    out = {}

    enc, dec = kmseal.Encryptor(key), kmseal.Decryptor(key)
    out["kmseal"] = (enc.encrypt, dec.decrypt)
    cenc, cdec = kmseal.Encryptor(key, cache=True), kmseal.Decryptor(key, cache=True)
    out["kmseal (cached data key)"] = (cenc.encrypt, cdec.decrypt)

    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        Algorithm,
        CommitmentPolicy,
        EncryptionKeyType,
        WrappingAlgorithm,
    )
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

    class StaticKeys(RawMasterKeyProvider):
        provider_id = "bench"

        def __init__(self, **kwargs):
            self._keys = {}

        def _get_raw_key(self, key_id):
            return WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=self._keys.setdefault(key_id, os.urandom(32)),
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            )

    mkp = StaticKeys()
    mkp.add_master_key(b"k1")
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    suite = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY  # committing, unsigned

    out["ESDK"] = (
        lambda d: client.encrypt(source=d, key_provider=mkp, algorithm=suite)[0],
        lambda c: client.decrypt(source=c, key_provider=mkp)[0],
    )
    cmm = aws_encryption_sdk.CachingCryptoMaterialsManager(
        master_key_provider=mkp,
        cache=aws_encryption_sdk.LocalCryptoMaterialsCache(capacity=100),
        max_age=300.0,
        max_messages_encrypted=10_000,
    )
    out["ESDK (caching CMM)"] = (
        lambda d: client.encrypt(source=d, materials_manager=cmm, algorithm=suite)[0],
        lambda c: client.decrypt(source=c, materials_manager=cmm)[0],
    )

    import tink
    from tink import aead

    aead.register()
    remote = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
    envelope = aead.KmsEnvelopeAead(aead.aead_key_templates.AES256_GCM, remote)
    out["Tink KmsEnvelopeAead"] = (
        lambda d: envelope.encrypt(d, b""),
        lambda c: envelope.decrypt(c, b""),
    )

    import pyrage

    ident = pyrage.x25519.Identity.generate()
    recipient = ident.to_public()
    out["pyrage"] = (lambda d: pyrage.encrypt(d, [recipient]), lambda c: pyrage.decrypt(c, [ident]))

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = AESGCM(os.urandom(32))
    nonce = os.urandom(12)  # a benchmark only: one nonce is never safe for real data
    out["cryptography AESGCM (raw, ceiling)"] = (
        lambda d: raw.encrypt(nonce, d, None),
        lambda c: raw.decrypt(nonce, c, None),
    )
    return out


def bench(size_name):
    size = SIZES[size_name]
    per_batch, rounds = PLAN[size_name]
    data = os.urandom(size)
    libs = contenders()
    sealed = {}
    for name, (enc, dec) in libs.items():
        sealed[name] = enc(data)
        back = dec(sealed[name])
        assert bytes(back) == data, name
    times = {name: ([], []) for name in libs}
    for _ in range(rounds):
        for name, (enc, dec) in libs.items():
            t0 = time.perf_counter()
            for _ in range(per_batch):
                enc(data)
            t1 = time.perf_counter()
            for _ in range(per_batch):
                dec(sealed[name])
            t2 = time.perf_counter()
            times[name][0].append((t1 - t0) / per_batch)
            times[name][1].append((t2 - t1) / per_batch)
    return size, {n: (statistics.median(e), statistics.median(d)) for n, (e, d) in times.items()}


def fmt_time(s):
    return f"{s * 1e6:,.1f} µs" if s < 1e-2 else f"{s * 1e3:,.1f} ms"


def main():
    sizes = sys.argv[1:] or list(SIZES)
    print(f"kmseal {kmseal.__version__}, Python {sys.version.split()[0]}; medians\n")
    for size_name in sizes:
        size, result = bench(size_name)
        k_enc = result["kmseal"][0]
        kc_enc = result["kmseal (cached data key)"][0]
        print(f"### {size_name} ({size:,} bytes)\n")
        print("| library | encrypt | decrypt | encrypt GB/s | kmseal encrypt is × faster "
              "| kmseal (cached) encrypt is × faster |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, (e, d) in result.items():
            print(
                f"| {name} | {fmt_time(e)} | {fmt_time(d)} | {size / e / 1e9:.2f} "
                f"| {e / k_enc:.1f} | {e / kc_enc:.1f} |"
            )
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
