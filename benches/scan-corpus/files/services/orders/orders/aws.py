"""orders: settings."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import boto3


def client():
    return boto3.client(
        "s3",
        region_name="us-west-2",
        aws_access_key_id="AKIAFRAGEB4BEZCWFNJU",
        aws_secret_access_key="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",
    )

password = getpass.getpass("Password: ")
secret_name = f"prod/{service}/db"
password = os.environ["DB_PASSWORD"]
PASSWORD_RESET_TEMPLATE = "emails/password_reset.html"
