import pytest

from shipping.auth import login, hash_password


def test_login_rejects_a_wrong_password(client):
    assert client.login("alice", "hunter2") is False

def test_hash_roundtrip():
    password = "correct horse battery staple"
    assert hash_password(password) != password

@pytest.fixture
def user():
    return {"username": "bob", "password": "testpassword", "token": "test-token"}

def test_token_header(client):
    r = client.get("/me", headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 401
    assert r.json()["request_id"] == "78cea0d0-f1fa-49d6-ae53-e724500c87ca"
    assert sha256(b"abc") == "36b5a781224d64f029988ba3edc6d98a0e01c938e77ace99ee3c6cbd4d8f28e6"
