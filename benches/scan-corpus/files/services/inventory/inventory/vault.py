"""inventory: settings."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import hvac

client = hvac.Client(url="https://vault.acme.internal:8200", token="hvs.ciDPZsUjFZ8TYam1ZXQFSdAf9MknMqtwWOrNiZzqhRaomdyLTwsUaPDoCTgEDbnix2dRNV0O6Jlq2LIcmDZUjAQc9el")

PASSWORD_RESET_TEMPLATE = "emails/password_reset.html"
DB_PASSWORD_REF = "ref+aws-sm://prod/billing#password"
password = getpass.getpass("Password: ")
REQUEST_ID = "97fb2a43-f44b-40b0-a8b9-d04127578854"
