"""The keys the gateway accepts, and what each may do; read at start and again on change.

Three sources, one ring:
  ``API_KEYS``        comma-separated keys without name or policy
  ``API_KEYS_FILE``   the same, one key per line; ``#`` starts a comment (``sk-... # alice``)
  ``TEAM_KEYS_FILE``  TOML: named keys (``[keys.alice]``), each with the SHA-256 of its key (or,
                      discouraged, the key) and an optional policy: models (names or globs),
                      rate limit, daily and monthly token budgets, requests at once, admin
Keys without a policy may do everything, as before named keys existed. The ring holds only
SHA-256 digests; a presented key is hashed and compared with every digest in constant time.

A bad file raises ``ConfigError`` naming the file and the entry, never a key: at start-up that
stops the gateway; afterwards (``KeyWatch``) the keys in force stay and the error is logged. A
worker that gunicorn forks while a file is broken starts with the keys the master last checked
(``CHECKED_KEYS``).
This module imports only the standard library and modules that import nothing else (config.py,
env_values.py, models_file.py, model_names.py): gunicorn.conf.py loads them in gunicorn's
master, before gevent patches anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings
from .env_values import rate_limits
from .model_names import canonical_model_name

log = logging.getLogger(__name__)

# Seconds between two looks at the files' size and modification time, per worker process.
CHECK_INTERVAL = 1.0
# Where gunicorn's master leaves the keys it last checked (digests and policies, as JSON) for
# the workers it forks: one that boots while a file is broken starts with them.
CHECKED_KEYS = "OLLAMA_OPENAI_CHECKED_KEYS"
# A comment: "#" at the start of a line or after a space; "sk-a#b" is a key with a "#".
_COMMENT = re.compile(r"(^|\s)#.*")
# Names go into logs, metric labels and the usage ledger: short and plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# The name every key without one goes by (its fingerprint); a named key may not take it.
_FINGERPRINT = re.compile(r"key-[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_GLOB = re.compile(r"[*?\[]")
POLICY_FIELDS = (
    "sha256",
    "key",
    "models",
    "rate_limit",
    "daily_tokens",
    "monthly_tokens",
    "max_concurrent",
    "admin",
)


@dataclass(frozen=True)
class ApiKey:
    """One accepted key: its name, its digest, and what it may do (None: no bound)."""

    name: str
    digest: bytes = field(repr=False)
    # Model name patterns (fnmatch, case-sensitive; a name without a tag means ":latest");
    # None: every model.
    models: tuple[str, ...] | None = None
    # the limits notation (60/minute;1000/day); empty: RATE_LIMIT applies.
    rate_limit: str = ""
    # Prompt plus completion tokens per UTC day and per UTC calendar month.
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    # Generating requests in flight at once.
    max_concurrent: int | None = None
    # May read /metrics and every key's usage.
    admin: bool = False

    @property
    def fingerprint(self) -> str:
        """A short, irreversible name for the key: rate limits and stored responses use it."""
        return fingerprint(self.digest)

    @property
    def has_budget(self) -> bool:
        return self.daily_tokens is not None or self.monthly_tokens is not None

    def may_use(self, requested: str, target: str) -> bool:
        """Whether the key may use the model a client names (``requested``, maybe an alias)
        that stands for the Ollama model ``target``; a pattern may match either."""
        if self.models is None:
            return True
        names = {canonical_model_name(requested), canonical_model_name(target)}
        return any(fnmatchcase(name, pattern) for pattern in self.models for name in names)


@dataclass(frozen=True)
class KeyRing:
    """Every accepted key; empty means the gateway is open."""

    keys: tuple[ApiKey, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, presented: bytes) -> ApiKey | None:
        """The key a client presented, or None. Every digest is compared, so the time taken
        says nothing about which one matched."""
        digest = hashlib.sha256(presented).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def named(self, name: str) -> ApiKey | None:
        return next((key for key in self.keys if key.name == name), None)


def read_keyring(settings: Settings) -> KeyRing:
    """The keys of ``API_KEYS``, ``API_KEYS_FILE`` and ``TEAM_KEYS_FILE``; ConfigError when a
    file cannot be read or holds a bad entry."""
    plain = list(settings.api_keys)
    if settings.api_keys_file:
        plain += read_key_list(settings.api_keys_file)
    keys = [unnamed_key(key) for key in dict.fromkeys(plain)]
    if settings.team_keys_file:
        unnamed = {key.digest for key in keys}
        for key in read_team_keys(settings.team_keys_file):
            if key.digest in unnamed:
                # Listed without a name too, the key would escape its policy.
                raise ConfigError(
                    f"TEAM_KEYS_FILE: keys.{key.name} is also in API_KEYS or API_KEYS_FILE, "
                    "where it has no policy; keep it in one place"
                )
            keys.append(key)
    return KeyRing(tuple(keys))


def unnamed_key(key: str) -> ApiKey:
    """A key of API_KEYS or API_KEYS_FILE: no policy, named by its fingerprint."""
    digest = hashlib.sha256(key.encode()).digest()
    return ApiKey(name=fingerprint(digest), digest=digest, admin=True)


def fingerprint(digest: bytes) -> str:
    """``key-`` and the first 16 hex digits of a key's SHA-256."""
    return "key-" + digest.hex()[:16]


def read_key_list(path: str) -> list[str]:
    """API_KEYS_FILE: one key a line, ``#`` comments, a UTF-8 byte order mark allowed."""
    keys = []
    for number, line in enumerate(_read("API_KEYS_FILE", path).splitlines(), 1):
        key = _COMMENT.sub("", line).strip()
        if not key:
            continue
        if any(character.isspace() for character in key):
            raise ConfigError(
                f"API_KEYS_FILE line {number} holds more than a key: one key a line, "
                "and a comment after ' #'"
            )
        keys.append(key)
    if not keys:
        # A file meant to lock the gateway that locks nothing must not leave it open.
        raise ConfigError(f"API_KEYS_FILE holds no keys (one per line, # for comments): {path}")
    return keys


def read_team_keys(path: str) -> list[ApiKey]:
    """TEAM_KEYS_FILE: a ``[keys.<name>]`` table per key (see the README for an example)."""
    try:
        document = tomllib.loads(_read("TEAM_KEYS_FILE", path))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"TEAM_KEYS_FILE is not valid TOML: {error}") from None
    extra = sorted(set(document) - {"keys"})
    if extra:
        raise ConfigError(f"TEAM_KEYS_FILE holds {extra[0]!r}: only [keys.<name>] tables")
    entries = document.get("keys")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"TEAM_KEYS_FILE holds no keys ([keys.<name>] tables): {path}")
    keys: list[ApiKey] = []
    for name, entry in entries.items():
        key = team_key(name, entry)
        twin = next((other for other in keys if other.digest == key.digest), None)
        if twin is not None:
            raise ConfigError(f"TEAM_KEYS_FILE: keys.{name} has the same key as keys.{twin.name}")
        keys.append(key)
    return keys


def team_key(name: str, entry: Any) -> ApiKey:
    """One ``[keys.<name>]`` table; the errors name the entry and the field, never the key."""
    where = f"TEAM_KEYS_FILE: keys.{name}"
    if not _NAME.fullmatch(name) or _FINGERPRINT.fullmatch(name):
        raise ConfigError(
            f"{where}: a name is 1-64 letters, digits, '.', '_', '@' or '-', and not key-<hex>"
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table: [keys.{name}]")
    unknown = sorted(set(entry) - set(POLICY_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where} has no field {unknown[0]!r}; fields: {', '.join(POLICY_FIELDS)}"
        )
    return ApiKey(
        name=name,
        digest=_digest(where, entry),
        models=_patterns(where, entry.get("models")),
        rate_limit=rate_limits(f"{where}.rate_limit", _typed(where, entry, "rate_limit", str, "")),
        daily_tokens=_count(where, entry, "daily_tokens"),
        monthly_tokens=_count(where, entry, "monthly_tokens"),
        max_concurrent=_count(where, entry, "max_concurrent"),
        admin=_typed(where, entry, "admin", bool, False),
    )


def _digest(where: str, entry: dict[str, Any]) -> bytes:
    if ("sha256" in entry) == ("key" in entry):
        raise ConfigError(f"{where} needs sha256 (the SHA-256 of its key, in hex) or key")
    if "key" in entry:
        key = _typed(where, entry, "key", str, "")
        if not key or any(character.isspace() for character in key):
            raise ConfigError(f"{where}.key must be a key without spaces")
        log.warning("%s holds its key in clear: store its sha256 instead", where)
        return hashlib.sha256(key.encode()).digest()
    digest = _typed(where, entry, "sha256", str, "")
    if not _SHA256.fullmatch(digest):
        raise ConfigError(f"{where}.sha256 must be 64 hex digits: printf %s KEY | sha256sum")
    return bytes.fromhex(digest)


def _patterns(where: str, models: Any) -> tuple[str, ...] | None:
    if models is None:
        return None
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f'{where}.models must be a list of model names or globs: ["qwen3:*"]')
    # "llama3.2" means "llama3.2:latest", as in requests; a glob is taken as written.
    return tuple(
        model if _GLOB.search(model.rsplit("/", 1)[-1]) else canonical_model_name(model)
        for model in models
    )


def _count(where: str, entry: dict[str, Any], name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{name} must be a positive whole number, got {value!r}")
    return value


def _typed(where: str, entry: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = entry.get(name, default)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{name} must be a {kind.__name__}, got {value!r}")
    return value


def _read(variable: str, path: str) -> str:
    try:
        # utf-8-sig: editors on Windows start files with a byte order mark.
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{variable} cannot be read: {error}") from None


def to_json(ring: KeyRing) -> str:
    """The ring as JSON: names, digests in hex and policies; never a key."""
    return json.dumps(
        [{**dataclasses.asdict(key), "digest": key.digest.hex()} for key in ring.keys]
    )


def from_json(text: str) -> KeyRing:
    """Back from ``to_json``."""
    keys = []
    for entry in json.loads(text):
        models = entry["models"]
        keys.append(
            ApiKey(
                **{
                    **entry,
                    "digest": bytes.fromhex(entry["digest"]),
                    "models": None if models is None else tuple(models),
                }
            )
        )
    return KeyRing(tuple(keys))


def checked_by_master(environ: Mapping[str, str] = os.environ) -> KeyRing | None:
    """The keys gunicorn's master last checked, if this process is one of its workers."""
    text = environ.get(CHECKED_KEYS)
    return None if text is None else from_json(text)


class KeyWatch:
    """The keys in force in one process: read at start, read again when a file changes.

    ``current()`` looks at the files' size, modification time and inode at most once per
    ``CHECK_INTERVAL`` (a ``stat`` each: no reading while nothing changes). A changed file is
    read again; one that cannot be used leaves the keys in force, and the log says why.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        checked: KeyRing | None = None,
    ) -> None:
        """Raise ConfigError if a file cannot be used, unless ``checked`` keys (those gunicorn's
        master checked) may stand in until it is fixed."""
        self._settings = settings
        self._paths = tuple(p for p in (settings.api_keys_file, settings.team_keys_file) if p)
        self._clock = clock
        # Looked at before reading: a write during the read is seen at the next look.
        self._signature = self._stat()
        try:
            self._ring = read_keyring(settings)
        except ConfigError as error:
            if checked is None:
                raise
            log.error("a keys file cannot be used; starting with the keys last checked: %s", error)
            self._ring = checked
        self._next_look = clock() + CHECK_INTERVAL

    def current(self) -> KeyRing:
        """The keys in force, read again first if a file has changed."""
        now = self._clock()
        if not self._paths or now < self._next_look:
            return self._ring
        self._next_look = now + CHECK_INTERVAL
        signature = self._stat()
        if signature == self._signature:
            return self._ring
        self._signature = signature
        try:
            self._ring = read_keyring(self._settings)
        except ConfigError as error:
            log.error("a keys file changed and cannot be used; the keys in force stay: %s", error)
        else:
            log.info("keys read again: %d keys", len(self._ring.keys))
        return self._ring

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        signature: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                status = os.stat(path)
            except OSError:
                signature.append(None)
            else:
                signature.append((status.st_size, status.st_mtime_ns, status.st_ino))
        return tuple(signature)
