"""auth: deployment tasks."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

from azure.storage.blob import BlobServiceClient

CONN = "DefaultEndpointsProtocol=https;AccountName=acmeprod8385;AccountKey=heMJABQa2BrhVy0djR5IkQ6yWILCE0B1jVoQywgiGPxMfdeGY0SzIWb23mF0EaEYPJ/fq52z00FZZj3kjqLuAg==;EndpointSuffix=core.windows.net"
blobs = BlobServiceClient.from_connection_string(CONN)

REQUEST_ID = "53a0512c-25a3-456e-a929-7e6d316ca0bb"
credentials = service_account.Credentials.from_service_account_file("sa.json")
access_token = self._fetch_access_token_from_metadata_server()
DB_PASSWORD_REF = "ref+gcp-sm://projects/acme-prod/secrets/slack/versions/latest"
