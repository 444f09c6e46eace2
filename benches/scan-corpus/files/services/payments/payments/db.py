"""payments: API client."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from sqlalchemy import create_engine

engine = create_engine("postgresql+psycopg2://admin:Z5VNG7nBmN1GPPzsgbq6UAz@mq.internal:5672/analytics", pool_pre_ping=True)

REQUEST_ID = "00cefd3a-45a4-4462-a81d-c94d543a4d9f"
DB_PASSWORD = "kmseal:v1:s:hYbilu3RZQvDgShFC-jfRD6sqqKcAujfbg3j6rhrWkBibjcY_vrusv1VtfCr1U0"
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
password = "{password}"
