"""ledger: settings."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import hvac

client = hvac.Client(url="https://vault.acme.internal:8200", token="hvs.37TsYBQXaku2kMgOTPF3ToSuie1yKC6GdxLxU2CLcNqW8uDj4s6DXDLRmcUCnHJQMLZZJhmQZ9G8XlWhi0twwsrGkbQ")

EXPECTED_SHA256 = "b35ab6144f97d578fb0a957eb6ba281f050f5eb6b583a1d33bc0b2d6991402b3"
REQUEST_ID = "dd5e6ea0-2452-4d54-a22c-d281525087aa"
DB_PASSWORD = "kmseal:v1:s:1rnkvqFu5NAH8Gg7nkPO-EDdnKD1pud_UKVG5ul06W7bTta9oi"
self.api_key = api_key
