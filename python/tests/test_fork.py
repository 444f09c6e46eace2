"""Fork safety for pre-fork servers (gunicorn) and multiprocessing's fork start method: objects
made before fork() refuse to work in the child; objects made in the child work."""

import multiprocessing
import os
import signal

import pytest

import kmseal


def in_child(fn):
    """Runs fn() in a forked child; returns its exit code (0 = every check passed)."""
    pid = os.fork()
    if pid == 0:
        # A hang (a runtime whose threads stayed in the parent) ends as a death by SIGALRM.
        signal.alarm(60)
        code = 1
        try:
            code = fn()
        except BaseException as e:  # report, never run the parent's pytest in the child
            os.write(2, f"child: {type(e).__name__}: {e}\n".encode())
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died (signal {os.WTERMSIG(status)}): a hang or a crash"
    return os.WEXITSTATUS(status)


def expect_fork_error(call):
    try:
        call()
    except kmseal.ForkError as e:
        assert "fork" in str(e)
        return True
    return False


def test_objects_made_before_fork_refuse_in_the_child(key):
    enc = kmseal.Encryptor(key, cache=True)
    dec = kmseal.Decryptor(key, cache=True)
    sealed = enc.encrypt(b"made in the parent")
    secret = dec.decrypt(sealed)
    generated = kmseal.SecretString.generate()

    def child():
        checks = [
            lambda: enc.encrypt(b"x"),
            lambda: dec.decrypt(sealed),
            lambda: secret.expose_secret(),
            lambda: generated.expose_secret(),
            lambda: kmseal.encrypt(secret, key),
            lambda: secret == b"made in the parent",
        ]
        if kmseal.BUFFER_PROTOCOL:
            checks.append(lambda: memoryview(secret))
        failed = [i for i, c in enumerate(checks) if not expect_fork_error(c)]
        if failed:
            os.write(2, f"no ForkError from checks {failed}\n".encode())
            return 2
        # Showing and dropping them is harmless.
        assert "fork" in repr(secret)
        secret.wipe()
        # Objects made here work, with the same key file.
        fresh_enc, fresh_dec = kmseal.Encryptor(key), kmseal.Decryptor(key)
        assert fresh_dec.decrypt(fresh_enc.encrypt(b"made in the child")) == b"made in the child"
        # And open what the parent sealed.
        assert fresh_dec.decrypt(sealed) == b"made in the parent"
        return 0

    assert in_child(child) == 0
    # The parent's objects are untouched.
    assert secret == b"made in the parent"
    assert dec.decrypt(enc.encrypt(b"still fine")) == b"still fine"


_PARENT_DECRYPTOR = None


def _use_parent_decryptor(sealed):
    try:
        _PARENT_DECRYPTOR.decrypt(sealed)
        return "no error"
    except kmseal.ForkError:
        return "ForkError"


def _own_decryptor(args):
    key, sealed = args
    return kmseal.Decryptor(key).decrypt(sealed).expose_secret()


def test_multiprocessing_fork_workers(key):
    global _PARENT_DECRYPTOR
    _PARENT_DECRYPTOR = kmseal.Decryptor(key)
    sealed = kmseal.encrypt(b"job input", key)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        assert pool.map(_use_parent_decryptor, [sealed] * 4) == ["ForkError"] * 4
        assert pool.map(_own_decryptor, [(key, sealed)] * 4) == [b"job input"] * 4


def test_a_kms_key_works_in_a_child_after_the_parent_used_it(vault_env):
    """The providers' I/O runtime belongs to the process that made it: a child that builds its
    own encryptor for a KMS key (here OpenBao transit) gets a working runtime of its own."""
    uri = f"vault+http://{vault_env}/transit/keys/kmseal-e2e"
    parent = kmseal.Encryptor(uri)
    sealed = parent.encrypt(b"wrapped by transit in the parent")

    def child():
        assert expect_fork_error(lambda: parent.encrypt(b"x"))
        mine = kmseal.Encryptor(uri)
        assert kmseal.decrypt(mine.encrypt(b"child"), uri) == b"child"
        assert kmseal.decrypt(sealed, uri) == b"wrapped by transit in the parent"
        return 0

    assert in_child(child) == 0
