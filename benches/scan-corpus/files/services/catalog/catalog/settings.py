"""catalog: storage helpers."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import os

SECRET_KEY = "@+mf-ab4_ho9!w@2bu0nblnm(rubx5(q!dmxfba^&4w=!k&t+^"
DEBUG = False
ALLOWED_HOSTS = ["catalog.acme.internal"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "catalog",
        "USER": "app",
        "PASSWORD": os.environ["DB_PASSWORD"],
        "HOST": "db.internal",
    }
}
AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

LOGO = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgeNPKrAfRjDEDTUbr3wat57FK6J+sC0M4wCM4lPuUMBWppX8MX9GZ7mW2GMs5gxnpnlBf5F9af939Q436VnELKFSvv9VSI5k3eJjzn0mrt5XJRcEpxKayMOSA=="
token_type_hint = "refresh_token"
self.api_key = api_key
password = "{password}"
