"""gateway: deployment tasks."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import requests

API_BASE = "https://api.gateway.internal"

def fetch(path: str) -> dict:
    headers = {"Authorization": "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMDQ3NjkxMTU0OTAiLCJpc3MiOiJhY2NvdW50cyIsInNjb3BlIjoiYWRtaW4iLCJpYXQiOjE3NTg5MzQzODgsImV4cCI6MTc5MDQ3MDM4OCwianRpIjoiNWJjODNlMzEwOTRiNzQxZCJ9.Xalz3OLK0rQT05KJ0efLuEYt9M63AS3kzorzqMHigcGWFSfvvRsffmyk9sTxVIvG1aJ8gb4bwxo2cciXpu1Q3U"}
    return requests.get(API_BASE + path, headers=headers, timeout=10).json()

api_key = os.getenv("API_KEY", "")
DB_PASSWORD_REF = "ref+vault-kv://secret/data/app#token"
secret_key_ref = "projects/acme/secrets/django/versions/latest"
password = "{password}"
