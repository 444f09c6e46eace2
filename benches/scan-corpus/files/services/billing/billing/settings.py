"""billing: settings."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import os

SECRET_KEY = "7_j^ihb-(u1b08de#nh3w+x#alu&xk*scwh#k5o!l@61cl0&2k"
DEBUG = False
ALLOWED_HOSTS = ["billing.acme.internal"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "billing",
        "USER": "app",
        "PASSWORD": os.environ["DB_PASSWORD"],
        "HOST": "db.internal",
    }
}
AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

api_key = os.getenv("API_KEY", "")
credentials = service_account.Credentials.from_service_account_file("sa.json")
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
DB_PASSWORD = "kmseal:v1:s:QxBYqiYc3rHpxT133tnH-bKwFhdfCmOXH-ha5WvLJuRi1v1KiwrbncB8eOY-cv6oAh7zI2nFHa_eLA"
