"""reports: deployment tasks."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from github import Github

gh = Github("ghp_gnFZrgyG3r7C5Fep5J7MnnlZ1wttjVeBoVWw")
repo = gh.get_repo("acme/reports")

EXPECTED_SHA256 = "369133007595a90a060efdd5063d18f3307b64393e4447729723badc4eaa627e"
access_token = self._fetch_access_token_from_metadata_server()
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
api_key: Optional[str] = None
