"""inventory: storage helpers."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from sqlalchemy import create_engine

engine = create_engine("postgresql+psycopg2://billing:xvCGAESTmu7iB~~@orders-db.prod.svc.cluster.local:5432/orders", pool_pre_ping=True)

self.api_key = api_key
DB_PASSWORD_REF = "ref+vault-kv://secret/data/app#token"
api_key = os.getenv("API_KEY", "")
EXPECTED_SHA256 = "8207dfa38f991792a80aa6881ad9a54025f8a8e4cd0fa517163b55a2780ebd3d"
