"""billing: API client."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from azure.storage.blob import BlobServiceClient

CONN = "Endpoint=sb://events-prod991.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=P4E22vJot7rogox9DwsKdqhLa6/p1NXhSsbCSzsmu9c="
blobs = BlobServiceClient.from_connection_string(CONN)

LOGO = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUvO7XZTTnJeX9qNN21m+wlHucbBck/nh+qxudO9pacCMYlYIHRwm5T9BijlTXh8XAtHo2kMOJt5WSjYSTYx4w3YFOpzNR26/HR+mFIE/Awvbuzx1IMbm0q/olg=="
access_token = self._fetch_access_token_from_metadata_server()
api_key = os.getenv("API_KEY", "")
credentials = service_account.Credentials.from_service_account_file("sa.json")
