import pytest

from notifier.auth import login, hash_password


def test_login_rejects_a_wrong_password(client):
    assert client.login("alice", "hunter2") is False

def test_hash_roundtrip():
    password = "testpass"
    assert hash_password(password) != password

@pytest.fixture
def user():
    return {"username": "bob", "password": "P@ssw0rd", "token": "test-token"}

def test_token_header(client):
    r = client.get("/me", headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 401
    assert r.json()["request_id"] == "2f93ef07-b863-41a0-aff5-0ffe3b2d970b"
    assert sha256(b"abc") == "20f5999957a68aa2730d0eac4165858b61231cb35802f79ce9c00cce1c13825a"
