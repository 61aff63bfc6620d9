"""What can be wrong with the `api_key` setting, said without ever showing the key."""

from __future__ import annotations

import re
from typing import Any


def api_key_problems(key: Any, *, required: bool) -> list[str]:
    """What is wrong with `api_key`, never showing it. Whitespace around it (a key pasted from a file, a variable
    with a trailing newline) is no mistake: the client strips it."""
    if key is None or (isinstance(key, str) and not key.strip()):
        missing = "Missing setting `api_key`: set it to a Klaviyo private API key (or TAP_KLAVIYO_API_KEY)"
        return [missing] if required else []
    if not isinstance(key, str):
        return ["Setting `api_key` must be a string: a Klaviyo private API key, which starts with pk_"]
    if not _HEADER_TOKEN.fullmatch(key.strip()):
        return [
            "Setting `api_key` holds whitespace or characters an HTTP header cannot carry (the key is not shown): "
            "copy the key again from Klaviyo's Settings > API keys"
        ]
    return []


# Printable ASCII without spaces: what an Authorization header's credentials can carry as they are.
_HEADER_TOKEN = re.compile(r"[!-~]+")
