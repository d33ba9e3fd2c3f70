"""The keys files: API_KEYS_FILE's lines, TEAM_KEYS_FILE's named keys and policies, the errors
that name an entry and never a key, model patterns, and reading again when a file changes."""

import dataclasses
import hashlib
import logging

import pytest

from ollama_openai.config import ConfigError, Settings
from ollama_openai.keyring import ApiKey, KeyRing, KeyWatch, read_keyring, unnamed_key

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-0123456789"


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


TEAM = f"""
# Who may use what.
[keys.alice]
sha256 = "{sha256(ALICE)}"
models = ["llama3.2", "qwen3:*", "hf.co/org/*"]
rate_limit = "30/minute; 1000/day"
daily_tokens = 50000
monthly_tokens = 1000000
max_concurrent = 2

[keys."ci.bot@example.com"]
key = "{BOB}"

[keys.ops]
sha256 = "{sha256("sk-ops").upper()}"
models = []
admin = true
"""


def ring_of(tmp_path, team=None, plain=None, api_keys=()):
    settings = Settings(api_keys=tuple(api_keys))
    if team is not None:
        (tmp_path / "team.toml").write_text(team, encoding="utf-8")
        settings = dataclasses.replace(settings, team_keys_file=str(tmp_path / "team.toml"))
    if plain is not None:
        (tmp_path / "keys").write_bytes(plain.encode())
        settings = dataclasses.replace(settings, api_keys_file=str(tmp_path / "keys"))
    return read_keyring(settings)


# --- API_KEYS and API_KEYS_FILE: keys without a policy ---


def test_keys_file_holds_one_key_per_line_with_comments(tmp_path):
    plain = "# alice\nsk-alice\n\n  sk-bob  # Bob, since May\nsk-c#d\n# sk-revoked\n\tsk-e\t#x\n"
    ring = ring_of(tmp_path, plain=plain, api_keys=["sk-carol", "sk-alice"])
    expected = ["sk-carol", "sk-alice", "sk-bob", "sk-c#d", "sk-e"]
    assert [key.name for key in ring.keys] == [unnamed_key(key).name for key in expected]
    assert all(ring.find(key.encode()) for key in expected)
    assert ring.find(b"sk-bob  # Bob, since May") is None


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path):
    ring = ring_of(tmp_path, plain="\ufeffsk-first\r\nsk-second\r\n")
    assert ring.find(b"sk-first") is not None
    assert ring.find(b"sk-second") is not None


def test_keys_without_a_policy_may_do_everything_and_go_by_their_fingerprint(tmp_path):
    key = ring_of(tmp_path, api_keys=["sk-x"]).find(b"sk-x")
    assert key == ApiKey(name="key-" + sha256("sk-x")[:16], digest=key.digest, admin=True)
    assert key.may_use("anything", "anything:else")
    assert key.fingerprint == key.name
    assert "sk-x" not in repr(key)


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        ("# nobody yet\n", "API_KEYS_FILE holds no keys"),
        ("", "API_KEYS_FILE holds no keys"),
        ("sk-one\nsk-two sk-three\n", "API_KEYS_FILE line 2 holds more than a key"),
        (b"\xff\xfe".decode("latin-1"), "API_KEYS_FILE cannot be read"),
    ],
)
def test_a_bad_keys_file_names_the_line_and_never_a_key(tmp_path, plain, message):
    path = tmp_path / "keys"
    path.write_bytes(plain.encode("latin-1"))
    with pytest.raises(ConfigError, match=message) as caught:
        read_keyring(Settings(api_keys_file=str(path)))
    assert "sk-two" not in str(caught.value)


def test_a_missing_keys_file_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"^API_KEYS_FILE cannot be read"):
        read_keyring(Settings(api_keys_file=str(tmp_path / "nowhere")))


# --- TEAM_KEYS_FILE: named keys and their policies ---


def test_team_keys_carry_their_names_and_policies(tmp_path, caplog):
    ring = ring_of(tmp_path, team=TEAM)
    alice, bot, ops = ring.keys
    assert alice == ApiKey(
        name="alice",
        digest=bytes.fromhex(sha256(ALICE)),
        models=("llama3.2:latest", "qwen3:*", "hf.co/org/*"),
        rate_limit="30/minute;1000/day",
        daily_tokens=50000,
        monthly_tokens=1000000,
        max_concurrent=2,
        admin=False,
    )
    assert (bot.name, bot.models, bot.admin, bot.has_budget) == (
        "ci.bot@example.com",
        None,
        False,
        False,
    )
    assert (ops.models, ops.admin) == ((), True)
    assert ring.find(ALICE.encode()) is alice
    assert ring.find(BOB.encode()) is bot
    assert ring.find(b"sk-ops") is ops
    assert ring.find(b"sk-nobody") is None
    assert ring.named("ops") is ops
    # A key kept in clear works, and the log says to store its hash instead (never the key).
    assert "keys.ci.bot@example.com holds its key in clear" in caplog.text
    assert BOB not in caplog.text


def test_team_keys_add_to_keys_without_a_policy(tmp_path):
    ring = ring_of(tmp_path, team=TEAM, plain="sk-legacy\n", api_keys=["sk-env"])
    assert [key.admin for key in ring.keys] == [True, True, False, False, True]
    assert ring.find(b"sk-legacy").name.startswith("key-")


def test_a_byte_order_mark_is_allowed_in_the_team_file(tmp_path):
    assert ring_of(tmp_path, team="\ufeff" + TEAM).named("alice") is not None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('key = "sk-z"\nsha256 = "00"', r"keys\.x needs sha256 \(.*\) or key"),
        ("models = []", r"keys\.x needs sha256"),
        ('sha256 = "abc"', r"keys\.x\.sha256 must be 64 hex digits"),
        ('key = "sk z"', r"keys\.x\.key must be a key without spaces"),
        ('key = ""', r"keys\.x\.key must be a key without spaces"),
        ('key = "sk-z"\nmodels = "llama3.2"', r"keys\.x\.models must be a list"),
        ('key = "sk-z"\nmodels = [""]', r"keys\.x\.models must be a list"),
        ('key = "sk-z"\ndaily_tokens = 0', r"keys\.x\.daily_tokens must be a positive whole"),
        ('key = "sk-z"\nmonthly_tokens = 1.5', r"keys\.x\.monthly_tokens must be a positive"),
        ('key = "sk-z"\nmax_concurrent = true', r"keys\.x\.max_concurrent must be a positive"),
        ('key = "sk-z"\nadmin = "yes"', r"keys\.x\.admin must be a bool"),
        ('key = "sk-z"\nrate_limit = "lots"', r"keys\.x\.rate_limit must be limits like"),
        ('key = "sk-z"\nrate_limit = 60', r"keys\.x\.rate_limit must be a str"),
        ('key = "sk-z"\ndaily_token = 5', r"keys\.x has no field 'daily_token'; fields: sha256"),
    ],
)
def test_a_bad_entry_names_the_entry_and_never_the_key(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=f"^TEAM_KEYS_FILE: {message}") as caught:
        ring_of(tmp_path, team=f"[keys.x]\n{entry}\n")
    assert "sk-z" not in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("team", "message"),
    [
        ("[keys.x\n", "TEAM_KEYS_FILE is not valid TOML: .*line 1"),
        ("", "TEAM_KEYS_FILE holds no keys"),
        ("[keys]\n", "TEAM_KEYS_FILE holds no keys"),
        ('keys = "sk-z"\n', "TEAM_KEYS_FILE holds no keys"),
        ('[key.x]\nkey = "sk-z"\n', "TEAM_KEYS_FILE holds 'key': only"),
        ('[keys]\nx = "sk-z"\n', r"TEAM_KEYS_FILE: keys\.x must be a table"),
        ('[keys."a b"]\nkey = "sk-z"\n', r"TEAM_KEYS_FILE: keys\.a b: a name is 1-64"),
        (
            '[keys.key-0123456789abcdef]\nkey = "sk-z"\n',
            r"TEAM_KEYS_FILE: keys.key-0123456789abcdef: a name is 1-64 .* not key-<hex>",
        ),
        (
            '[keys.a]\nkey = "sk-z"\n[keys.b]\nsha256 = "' + sha256("sk-z") + '"\n',
            r"TEAM_KEYS_FILE: keys\.b has the same key as keys\.a",
        ),
    ],
)
def test_a_bad_team_file_says_what_is_wrong(tmp_path, team, message):
    with pytest.raises(ConfigError, match=f"^{message}") as caught:
        ring_of(tmp_path, team=team)
    assert "sk-z" not in str(caught.value)


def test_a_key_cannot_be_both_named_and_without_a_policy(tmp_path):
    with pytest.raises(ConfigError, match=r"keys\.alice is also in API_KEYS or API_KEYS_FILE"):
        ring_of(tmp_path, team=TEAM, api_keys=[ALICE])


@pytest.mark.parametrize(
    ("patterns", "requested", "target", "allowed"),
    [
        (["llama3.2"], "llama3.2", "llama3.2", True),
        (["llama3.2"], "llama3.2:latest", "llama3.2:latest", True),
        (["llama3.2:latest"], "llama3.2", "llama3.2", True),
        (["llama3.2"], "llama3.2:1b", "llama3.2:1b", False),
        (["llama3.2*"], "llama3.2:1b", "llama3.2:1b", True),
        (["qwen3:*"], "qwen3:8b", "qwen3:8b", True),
        (["qwen3:*"], "qwen3", "qwen3", True),
        (["qwen3:*"], "qwen3-coder:30b", "qwen3-coder:30b", False),
        (["hf.co/org/*"], "hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M", True),
        (["Llama3.2"], "llama3.2", "llama3.2", False),
        # An alias is allowed by its own name or by its model's.
        (["gpt-4o"], "gpt-4o", "llama3.2:latest", True),
        (["llama3.2"], "gpt-4o", "llama3.2:latest", True),
        (["gpt-4o"], "llama3.2", "llama3.2", False),
        ([], "llama3.2", "llama3.2", False),
        (["*"], "anything", "anything", True),
    ],
)
def test_model_patterns(tmp_path, patterns, requested, target, allowed):
    team = f'[keys.x]\nkey = "sk-z"\nmodels = {patterns!r}\n'.replace("'", '"')
    key = ring_of(tmp_path, team=team).keys[0]
    assert key.may_use(requested, target) is allowed


def test_an_empty_ring_finds_nothing():
    assert not KeyRing()
    assert KeyRing().find(b"") is None


# --- Reading again when a file changes ---


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_changed_file_is_read_again_within_the_interval(tmp_path):
    (tmp_path / "keys").write_text("sk-old\n")
    clock = Clock()
    watch = KeyWatch(Settings(api_keys_file=str(tmp_path / "keys")), clock=clock)
    (tmp_path / "keys").write_text("sk-new\nsk-newer\n")
    # Within the interval the file is not looked at.
    clock.now = 0.5
    assert watch.current().find(b"sk-old") is not None
    clock.now = 1.0
    assert watch.current().find(b"sk-old") is None
    assert watch.current().find(b"sk-new") is not None


def test_an_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    (tmp_path / "team.toml").write_text(TEAM)
    clock = Clock()
    watch = KeyWatch(Settings(team_keys_file=str(tmp_path / "team.toml")), clock=clock)
    reads = []
    monkeypatch.setattr("ollama_openai.keyring.read_keyring", reads.append)
    for second in range(1, 5):
        clock.now = second
        assert watch.current().named("alice") is not None
    assert reads == []


@pytest.mark.parametrize(
    "broken", ["", "[keys.alice\n", '[keys.alice]\nsha256 = "nothex"\n'], ids=repr
)
def test_a_broken_file_keeps_the_keys_in_force_and_logs_why(tmp_path, broken, caplog):
    path = tmp_path / "team.toml"
    path.write_text(TEAM)
    clock = Clock()
    watch = KeyWatch(Settings(team_keys_file=str(path)), clock=clock)
    path.write_text(broken)
    clock.now = 1
    with caplog.at_level(logging.ERROR, logger="ollama_openai.keyring"):
        assert watch.current().named("alice") is not None
    assert "a keys file changed and cannot be used; the keys in force stay: " in caplog.text
    assert "TEAM_KEYS_FILE" in caplog.text
    # Once fixed, the file is read again.
    path.write_text(TEAM.replace("[keys.alice]", "[keys.alicia]"))
    clock.now = 2
    assert watch.current().named("alicia") is not None


def test_a_removed_file_keeps_the_keys_in_force(tmp_path, caplog):
    path = tmp_path / "keys"
    path.write_text("sk-old\n")
    clock = Clock()
    watch = KeyWatch(Settings(api_keys_file=str(path)), clock=clock)
    path.unlink()
    clock.now = 1
    assert watch.current().find(b"sk-old") is not None
    assert "API_KEYS_FILE cannot be read" in caplog.text


def test_a_bad_file_at_start_is_a_config_error(tmp_path):
    (tmp_path / "keys").write_text("# none\n")
    with pytest.raises(ConfigError, match="API_KEYS_FILE holds no keys"):
        KeyWatch(Settings(api_keys_file=str(tmp_path / "keys")))
