"""media: API client."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import stripe
from slack_sdk import WebClient

stripe.api_key = "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"
slack = WebClient(token="xoxb-836146190331-3352376816857-jmlWH7sAJZXi6rKuVvHCzHW9")

password = "{password}"
private_key_path = Path("~/.ssh/id_ed25519").expanduser()
token_type_hint = "refresh_token"
EXPECTED_SHA256 = "f0668280f5f020ce25b09a6ad301eb3d11ccc6d212e524d352cc2af725a75267"
