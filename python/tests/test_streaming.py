"""encrypt_stream/decrypt_stream: paths and file objects, constant memory, nothing partial."""

import io
import os
import subprocess
import sys
import textwrap

import pytest

import kmseal


def test_path_to_path_round_trip(key, tmp_path):
    src = tmp_path / "data.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    enc, dec = kmseal.Encryptor(key, {"f": "data"}), kmseal.Decryptor(key, {"f": "data"})
    assert enc.encrypt_stream(str(src), tmp_path / "data.kmseal") == len(data)
    assert oct((tmp_path / "data.kmseal").stat().st_mode & 0o777) == "0o644"
    assert dec.decrypt_stream(tmp_path / "data.kmseal", tmp_path / "out.bin") == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    # Plaintext outputs are private.
    assert oct((tmp_path / "out.bin").stat().st_mode & 0o777) == "0o600"
    # The streamed message is an ordinary message.
    assert kmseal.decrypt((tmp_path / "data.kmseal").read_bytes(), key) == data


def test_file_objects_round_trip(key):
    data = os.urandom(200_000)
    sealed = io.BytesIO()
    kmseal.Encryptor(key).encrypt_stream(io.BytesIO(data), sealed)
    out = io.BytesIO()
    kmseal.Decryptor(key).decrypt_stream(io.BytesIO(sealed.getvalue()), out)
    assert out.getvalue() == data


@pytest.mark.parametrize("damage", ["truncate", "flip", "trailing"])
def test_a_damaged_stream_leaves_no_output_file(key, tmp_path, damage):
    data = os.urandom(1_000_000)
    sealed = bytearray(kmseal.Encryptor(key, frame_size=4096).encrypt(data))
    if damage == "truncate":
        sealed = sealed[: len(sealed) - 5000]
    elif damage == "flip":
        sealed[len(sealed) // 2] ^= 0x10
    else:
        sealed += b"junk"
    (tmp_path / "bad.kmseal").write_bytes(bytes(sealed))
    before = set(os.listdir(tmp_path))
    with pytest.raises(kmseal.DecryptError):
        kmseal.Decryptor(key).decrypt_stream(tmp_path / "bad.kmseal", tmp_path / "out.bin")
    # Neither the output nor a temporary file is left behind.
    assert set(os.listdir(tmp_path)) == before


def test_an_exception_in_a_file_object_propagates(key):
    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise OSError(5, "disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        kmseal.Encryptor(key).encrypt_stream(Broken(), io.BytesIO())


def test_bad_stream_arguments_are_typed(key):
    with pytest.raises(kmseal.InvalidArgumentError):
        kmseal.Encryptor(key).encrypt_stream(12, io.BytesIO())
    with pytest.raises(FileNotFoundError.__mro__[1]):
        kmseal.Encryptor(key).encrypt_stream("/nonexistent/file", io.BytesIO())


def _peak_rss_kib(key, directory, mib):
    """Peak RSS (KiB) of a fresh interpreter that streams a file of `mib` MiB through
    encrypt_stream and decrypt_stream, path to path."""
    script = textwrap.dedent(
        f"""
        import os, resource, kmseal
        src = os.path.join({str(directory)!r}, 'big-{mib}.bin')
        with open(src, 'wb') as f:
            chunk = os.urandom(1 << 20)
            for _ in range({mib}):
                f.write(chunk)
        kmseal.Encryptor({key!r}).encrypt_stream(src, src + '.kmseal')
        kmseal.Decryptor({key!r}).decrypt_stream(src + '.kmseal', src + '.out')
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, env=dict(os.environ)
    ).stdout
    return int(out.split()[0])


def test_streaming_100_mib_stays_in_bounded_memory(key, tmp_path):
    """Peak RSS streaming 100 MiB is that of streaming 10 MiB: memory does not grow with the
    input (figures printed for BENCHMARKS.md)."""
    small = _peak_rss_kib(key, tmp_path, 10)
    large = _peak_rss_kib(key, tmp_path, 100)
    print(f"peak RSS streaming 10 MiB: {small} KiB; 100 MiB: {large} KiB")
    assert large - small < 16 * 1024, (small, large)
    assert large < 100 * 1024, large
    a, b = tmp_path / "big-100.bin", tmp_path / "big-100.bin.out"
    assert a.stat().st_size == b.stat().st_size == 100 << 20
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            assert x == y
            if not x:
                break


def test_a_named_pipe_destination_is_written_not_replaced(key, tmp_path):
    # A rename over a device or FIFO would replace it with a regular file (as root, even
    # /dev/null): such destinations are written to directly.
    import stat
    import threading

    src = tmp_path / "plain.bin"
    src.write_bytes(b"through the pipe")
    sealed = tmp_path / "sealed.kmseal"
    kmseal.Encryptor(key).encrypt_stream(str(src), str(sealed))
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    kmseal.Decryptor(key).decrypt_stream(str(sealed), str(fifo))
    reader.join(timeout=20)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
