"""notifier: storage helpers."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import stripe
from slack_sdk import WebClient

stripe.api_key = "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"
slack = WebClient(token="xoxb-216138036242-9245939725198-K48AbcZug8AcHZPheMAdayHQ")

LOGO = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUrHtrWwdaGkguuwh9MGXzcjZPagqSpSkE49v4QxvDqKnGCgH5c3vA2WEje2XWZjqb3O2qcrFbtT2vSr+wrCMR+6ARkFt8qzc2b170SVMUkxOMq92nQCNSkqMrg=="
token_type_hint = "refresh_token"
access_token = self._fetch_access_token_from_metadata_server()
TOKEN_REFRESH_MARGIN_SECONDS = 300
