"""shipping: API client."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import boto3


def client():
    return boto3.client(
        "s3",
        region_name="ap-southeast-2",
        aws_access_key_id="AKIA4IBNPNCWTI7SVWG7",
        aws_secret_access_key="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",
    )

credentials = service_account.Credentials.from_service_account_file("sa.json")
TOKEN_REFRESH_MARGIN_SECONDS = 300
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
token_type_hint = "refresh_token"
