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
    key = key.strip()
    if _UNEXPANDED.fullmatch(key):
        return [
            "Setting `api_key` is an environment variable's name ($NAME, ${NAME} or %NAME%), not its value: nothing "
            "expanded it (a plain config file does not); put the key itself, or use TAP_KLAVIYO_API_KEY with "
            "--config ENV"
        ]
    if not _HEADER_TOKEN.fullmatch(key):
        return [
            "Setting `api_key` holds whitespace or characters an HTTP header cannot carry (the key is not shown): "
            "copy the key again from Klaviyo's Settings > API keys"
        ]
    if _PUBLIC_KEY.fullmatch(key):
        return [
            "Setting `api_key` is a public API key (the 6-character site ID), which cannot read the API: create a "
            "private API key with read scopes in Klaviyo's Settings > API keys (it starts with pk_)"
        ]
    return []


# Printable ASCII without spaces: what an Authorization header's credentials can carry as they are.
_HEADER_TOKEN = re.compile(r"[!-~]+")
# `$NAME`, `${NAME}`, `%NAME%`: a variable a shell, Meltano or Windows would have expanded.
_UNEXPANDED = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}|%[A-Za-z_][A-Za-z0-9_]*%")
# Klaviyo's public API key, the site ID its JavaScript uses: six letters and digits.
_PUBLIC_KEY = re.compile(r"[A-Za-z0-9]{6}")
