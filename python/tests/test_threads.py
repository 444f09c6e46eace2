"""The GIL is released during native calls, and the asyncio variants run in worker threads."""

import asyncio
import os
import threading

import kmseal


def test_the_gil_is_released_while_a_call_blocks(key, tmp_path):
    """encrypt_stream opens a FIFO source, which blocks until a writer opens it. The writer is
    this (main) thread: if the native call held the GIL, the main thread could never run and
    the call would never finish."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    enc = kmseal.Encryptor(key)
    result = {}

    def worker():
        try:
            result["n"] = enc.encrypt_stream(str(fifo), tmp_path / "out.kmseal")
        except BaseException as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=worker)
    t.start()
    with open(fifo, "wb") as w:  # blocks until the worker has opened it: it runs without the GIL
        w.write(b"through a pipe" * 1000)
    t.join(timeout=60)
    assert not t.is_alive(), "the native call never finished: it held the GIL"
    assert "error" not in result, result
    assert result["n"] == 14000
    assert kmseal.decrypt((tmp_path / "out.kmseal").read_bytes(), key) == b"through a pipe" * 1000


def test_threads_share_an_encryptor(key):
    enc, dec = kmseal.Encryptor(key, cache=True), kmseal.Decryptor(key, cache=True)
    errors = []

    def work(i):
        try:
            for j in range(50):
                data = os.urandom(100 + i * 10 + j)
                assert dec.decrypt(enc.encrypt(data)) == data
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_async_variants(key, tmp_path):
    async def main():
        sealed = await kmseal.encrypt_async(b"async data", key, {"a": "1"})
        plain = await kmseal.decrypt_async(sealed, key, {"a": "1"})
        assert plain == b"async data"
        both = await asyncio.gather(
            kmseal.encrypt_async(b"one", key), kmseal.encrypt_async(b"two", key)
        )
        assert [kmseal.decrypt(b, key) for b in both] == [b"one", b"two"]
        path = tmp_path / "s.env"
        path.write_text("A=1\n")
        cfg = await kmseal.open_config_async(path, unsealed=True)
        assert cfg.plain("A") == "1"
        (tmp_path / "value").write_bytes(b"file-secret")
        os.chmod(tmp_path / "value", 0o600)
        got = await kmseal.get_secret_async(f"file://{tmp_path / 'value'}")
        assert got == b"file-secret"

    asyncio.run(main())
