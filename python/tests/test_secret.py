"""SecretBytes and SecretString: locked memory read in place, wiped on request, never shown."""

import copy
import pickle

import pytest

import kmseal

VALUE = b"correct horse battery staple"


def test_repr_str_and_format_never_show_the_value():
    s = kmseal.SecretBytes(VALUE)
    t = kmseal.SecretString(VALUE.decode())
    for text in [repr(s), str(s), f"{s}", repr(t), str(t), f"{t!r}", repr([s, t])]:
        assert "horse" not in text, text
    assert repr(s) == "SecretBytes(<redacted>, 28 bytes)"
    assert repr(t) == "SecretString(<redacted>, 28 bytes)"


def test_pickling_and_copying_are_refused():
    for s in [kmseal.SecretBytes(VALUE), kmseal.SecretString("x" * 20)]:
        for attempt in [
            lambda: pickle.dumps(s),
            lambda: copy.copy(s),
            lambda: copy.deepcopy(s),
        ]:
            with pytest.raises(TypeError, match="cannot be pickled"):
                attempt()


@pytest.mark.skipif(not kmseal.BUFFER_PROTOCOL, reason="built for CPython < 3.11 (no buffer ABI)")
def test_memoryview_reads_in_place_read_only_and_sees_the_wipe():
    s = kmseal.SecretBytes(VALUE)
    view = memoryview(s)
    assert view.readonly and view.nbytes == len(VALUE) and view.format == "B"
    assert bytes(view) == VALUE
    with pytest.raises(TypeError):
        view[0] = 0
    s.wipe()
    # The view looked at the locked buffer itself: it now reads zeros, not a stale copy.
    assert bytes(view) == bytes(len(VALUE))
    view.release()
    with pytest.raises(kmseal.WipedError):
        memoryview(s)


@pytest.mark.skipif(not kmseal.BUFFER_PROTOCOL, reason="built for CPython < 3.11 (no buffer ABI)")
def test_a_with_block_wipes_on_exit_even_on_error():
    s = kmseal.SecretBytes(VALUE)
    with pytest.raises(RuntimeError):
        with s as inside:
            view = memoryview(inside)
            assert bytes(view) == VALUE
            raise RuntimeError("boom")
    assert s.wiped and len(s) == 0 and not s
    assert bytes(view) == bytes(len(VALUE))


def test_reads_after_wipe_raise(key):
    s = kmseal.SecretBytes(VALUE)
    s.wipe()
    s.wipe()  # idempotent
    with pytest.raises(kmseal.WipedError):
        s.expose_secret()
    with pytest.raises(kmseal.WipedError):
        kmseal.encrypt(s, key)
    assert repr(s) == "SecretBytes(<wiped>)"


def test_equality_is_by_value_and_never_with_str():
    s = kmseal.SecretBytes(VALUE)
    assert s == VALUE and s == kmseal.SecretBytes(VALUE) and s == bytearray(VALUE)
    assert s != VALUE[:-1] and s != b"x" * len(VALUE)
    assert s != VALUE.decode()
    with pytest.raises(TypeError):
        hash(s)


def test_secret_string_generate_and_decode():
    for spec, length in [("base64:32", 44), ("hex:16", 32), ("alnum:40", 40), ("base64url:32", 43)]:
        g = kmseal.SecretString.generate(spec)
        assert len(g) == length, spec
        text = g.expose_secret()
        assert isinstance(text, str) and len(text) == length
    assert kmseal.SecretString.generate() != kmseal.SecretString.generate()
    with pytest.raises(kmseal.InvalidArgumentError):
        kmseal.SecretString.generate("base64:4")  # under 96 bits
    t = kmseal.SecretBytes("pässwörd".encode()).decode()
    assert isinstance(t, kmseal.SecretString) and len(t) == 8 and t.expose_secret() == "pässwörd"
    with pytest.raises(ValueError) as info:
        kmseal.SecretBytes(b"\xff\xfe secret-tail").decode()
    assert "secret-tail" not in str(info.value)


def test_random_and_locked():
    r = kmseal.SecretBytes.random(32)
    assert len(r) == 32 and r != bytes(32)
    assert isinstance(r.locked, bool)
