import pytest

from search.auth import login, hash_password


def test_login_rejects_a_wrong_password(client):
    assert client.login("alice", "hunter2") is False

def test_hash_roundtrip():
    password = "correct horse battery staple"
    assert hash_password(password) != password

@pytest.fixture
def user():
    return {"username": "bob", "password": "not-a-real-password", "token": "test-token"}

def test_token_header(client):
    r = client.get("/me", headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 401
    assert r.json()["request_id"] == "dee6ff51-c914-4d8c-a616-b0b61ac307ac"
    assert sha256(b"abc") == "5b7cb1e48558794c3878b6b199b030d59a255ba272ffc7a9ac08662f90ec5dba"
