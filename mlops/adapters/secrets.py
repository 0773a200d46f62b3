"""The one masking of secrets in text mlops shows, records or sends back.

Secrets reach mlops only through environment variables (`MLOPS_GITLAB_TOKEN`, `MLOPS_GIT_TOKEN`,
`CI_JOB_TOKEN`, the cloud keys DVC's remotes read, ...). Text built from what a server, git or a
stage's command answered may echo one of them back, verbatim, URL-encoded or inside a URL's
credentials. Every message therefore goes through `mask` (errors mask their message and hint
when they are built, the CLI masks again whatever it prints), and anything shortened is masked
*before* it is cut (`clip`): a cut through a token would otherwise print its first characters.

A variable counts as a secret when its name contains TOKEN, PASSWORD, PASSWD, SECRET, KEY,
CREDENTIAL or PRIVATE (or is one of `KNOWN`), and its value is at least `MIN_LENGTH` characters
(so flags such as `1` or `true` do not blank every digit of a message).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping

MASK = "[MASKED]"
MIN_LENGTH = 6
KNOWN = (
    "MLOPS_GITLAB_TOKEN",
    "MLOPS_GIT_TOKEN",
    "CI_JOB_TOKEN",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPLOY_PASSWORD",
    "GITLAB_TOKEN",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
_NAME = re.compile(r"TOKEN|PASSW(OR)?D|SECRET|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
# `scheme://user:password@host` (or `scheme://token@host`): the credentials part of a URL
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")


def is_secret_name(name: str) -> bool:
    """True for an environment variable whose value mlops treats as a secret."""
    return name in KNOWN or bool(_NAME.search(name))


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values to mask: of every secret-looking variable, longest first (so a secret that
    contains another is masked whole), with their URL-encoded forms."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if value and len(value) >= MIN_LENGTH and is_secret_name(name):
            found.add(value)
            for encoded in (urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)):
                if encoded != value:
                    found.add(encoded)
    return sorted(found, key=len, reverse=True)


def mask(text: str, extra: Iterable[str] = (), env: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value (and `extra` ones) replaced by `[MASKED]`, and URL
    credentials (`https://user:token@host`) by `***`."""
    if not text:
        return text
    values = secret_values(env)
    for value in extra:
        if value and value not in values:
            values.append(value)
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def clip(text: str, limit: int, *, keep: str = "head") -> str:
    """Mask, then shorten to at most about `limit` characters (`keep` the head or the tail)."""
    text = mask(text)
    if len(text) <= limit:
        return text
    return text[:limit] + " ..." if keep == "head" else "... " + text[-limit:]
