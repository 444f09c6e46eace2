"""analytics: settings."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import requests

API_BASE = "https://api.analytics.internal"

def fetch(path: str) -> dict:
    headers = {"Authorization": "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI4NTgyMDc0ODEwMjQiLCJpc3MiOiJiaWxsaW5nLWFwaSIsInNjb3BlIjoib3JkZXJzOnJlYWQiLCJpYXQiOjE3NDc5NTk4NTEsImV4cCI6MTc0Nzk2MzQ1MSwianRpIjoiZGQzMDdiZWZmMDg5NTgxMSJ9.PsdrLA5INEli5HCQLKpnE6lZ82IJOyDq7Jy_7dc-dOCMOtHh1rnP67b9FgociICVfSY82-2c_HD118r2hr5Ck5"}
    return requests.get(API_BASE + path, headers=headers, timeout=10).json()

credentials = service_account.Credentials.from_service_account_file("sa.json")
password = "{password}"
LOGO = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUm36P9U0mI/ArH2xiJ2V95kFr5y+HOQ1SCqjh5muOSKk5vQIuCbXRQYhzlEFsNpXYc3J5RpCfMMinBS/gAwJw1RjyoKQTcD/P6/rk6+BPhmubG2Kc2eFwzgUjQ=="
TOKEN_REFRESH_MARGIN_SECONDS = 300
