import pytest

from orders.auth import login, hash_password


def test_login_rejects_a_wrong_password(client):
    assert client.login("alice", "hunter2") is False

def test_hash_roundtrip():
    password = "password123"
    assert hash_password(password) != password

@pytest.fixture
def user():
    return {"username": "bob", "password": "P@ssw0rd", "token": "test-token"}

def test_token_header(client):
    r = client.get("/me", headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 401
    assert r.json()["request_id"] == "b7f09bbf-f350-4d6f-a86b-aa3a54fd6c9c"
    assert sha256(b"abc") == "26082da50ec9718cf98ae9102593036f72a41954cdbb9d8a1f3487ec73831cc9"
