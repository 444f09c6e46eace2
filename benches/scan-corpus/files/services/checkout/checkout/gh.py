"""checkout: deployment tasks."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from github import Github

gh = Github("gho_tZKceEsvDiq311e3ApZM3GDDfJrBJgn6nif5")
repo = gh.get_repo("acme/checkout")

DB_PASSWORD = "kmseal:v1:s:sgrvvORvBNF1ec-EcaXYAyBkH4oEM4NAaA7mW1BaHspOygmbFv"
token = response.json()["access_token"]
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
password = getpass.getpass("Password: ")
