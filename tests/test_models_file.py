"""The models file (MODELS_FILE): read once at start-up, settings per model and per alias, the
option policy, and a bad file stopping start-up with one line naming the key."""

import math
import subprocess
import sys
import textwrap

import pytest

from ollama_openai.config import ConfigError, Settings
from ollama_openai.models_file import ModelEntry, Policy, keep_alive_seconds
from tests.test_config import ROOT, start_up

EXAMPLE = """
[policy]
client_options = ["temperature", "top_k", "num_ctx"]
max_num_ctx = 65536
max_keep_alive = "1h"

[models."qwen3:8b"]
options = { num_ctx = 16384, top_k = 20 }
keep_alive = "30m"
think = true
temperature = 0.6
max_tokens = 2048

[models."llama3.2"]
context_overflow = "truncate"

[models."llama3.2".policy]
max_num_ctx = 8192
over_limit = "clamp"

[aliases.gpt-4o]
model = "qwen3:8b"
options = { num_ctx = 32768 }

[aliases.gpt-4o-mini]
model = "qwen3:8b"
options = { num_ctx = 8192 }
think = false
"""


def read(tmp_path, text, **env):
    path = tmp_path / "models.toml"
    path.write_text(textwrap.dedent(text))
    return Settings.from_env({"MODELS_FILE": str(path), **env})


def test_an_alias_gets_its_own_settings_over_its_models(tmp_path):
    catalog = read(tmp_path, EXAMPLE).models
    big, small = catalog.profile("gpt-4o"), catalog.profile("gpt-4o-mini")
    assert big.model == small.model == "qwen3:8b"
    assert big.entry.options == {"num_ctx": 32768, "top_k": 20}
    assert small.entry.options == {"num_ctx": 8192, "top_k": 20}
    assert (big.entry.think, small.entry.think) == (True, False)
    assert big.entry.keep_alive == small.entry.keep_alive == "30m"
    assert (big.entry.temperature, big.entry.max_tokens) == (0.6, 2048)


def test_model_names_match_as_ollama_matches_them(tmp_path):
    catalog = read(tmp_path, EXAMPLE).models
    for name in ("llama3.2", "llama3.2:latest"):
        profile = catalog.profile(name)
        assert profile.model == name
        assert profile.entry.context_overflow == "truncate"
    assert catalog.profile("mistral:7b").entry == ModelEntry()


def test_policies_layer_the_models_over_the_files(tmp_path):
    catalog = read(tmp_path, EXAMPLE).models
    assert catalog.profile("mistral:7b").policy == Policy(
        client_options=frozenset({"temperature", "top_k", "num_ctx"}),
        max_num_ctx=65536,
        max_keep_alive=3600.0,
    )
    llama = catalog.profile("llama3.2").policy
    assert (llama.max_num_ctx, llama.over_limit, llama.max_keep_alive) == (8192, "clamp", 3600.0)


def test_model_aliases_join_the_files_aliases(tmp_path):
    settings = read(tmp_path, EXAMPLE, MODEL_ALIASES="gpt-3.5-turbo=llama3.2")
    assert settings.models.alias_targets == {
        "gpt-4o": "qwen3:8b",
        "gpt-4o-mini": "qwen3:8b",
        "gpt-3.5-turbo": "llama3.2",
    }
    # An alias of MODEL_ALIASES has no settings of its own: its model's entry applies.
    assert settings.models.profile("gpt-3.5-turbo").entry.context_overflow == "truncate"


def test_without_a_file_only_model_aliases_count():
    settings = Settings.from_env({"MODEL_ALIASES": "gpt-4o=llama3.2"})
    assert settings.models.alias_targets == {"gpt-4o": "llama3.2"}
    assert settings.models.profile("gpt-4o").policy == Policy()
    assert Settings.from_env({}).models == Settings().models


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\n", "model is not a known key (policy, models, aliases)"),
        ("[models.x]\noptoins = {}\n", "models.x.optoins is not a known key"),
        ('[models."qwen3:8b"]\noptions = { num_cxt = 1 }\n', 'models."qwen3:8b".options names'),
        (
            "[models.x]\noptions = { num_ctx = 8192.5 }\n",
            "models.x.options.num_ctx must be a whole",
        ),
        ("[models.x]\noptions = { num_ctx = 0 }\n", "models.x.options.num_ctx must be a positive"),
        ("[models.x]\noptions = { temperature = 'hot' }\n", "temperature must be a number"),
        ("[models.x]\noptions = { stop = 'end' }\n", "models.x.options.stop must be a list"),
        ("[models.x]\nthink = 'lots'\n", "models.x.think must be true, false or a level"),
        ("[models.x]\ntemperature = 3\n", "models.x.temperature must be a number from 0 to 2"),
        ("[models.x]\nmax_tokens = 0\n", "models.x.max_tokens must be a positive whole number"),
        ("[models.x]\nkeep_alive = '5 minutes'\n", "models.x.keep_alive must be a duration"),
        ("[models.x]\ncontext_overflow = 'cut'\n", "context_overflow must be one of error, trunc"),
        ("[models.'llama3.2']\n[models.'llama3.2:latest']\n", "names a model listed already"),
        ("[models.llama3.2]\nkeep_alive = 1\n", 'quoted: [models."llama3.2"]'),
        ("[aliases.gpt-4.1]\nmodel = 'x'\n", 'quoted: [aliases."gpt-4.1"]'),
        ("[aliases.a]\noptions = {}\n", "aliases.a.model must name an Ollama model"),
        ("[aliases.a]\nmodel = 'b'\n[aliases.b]\nmodel = 'c'\n", "names the alias 'b'"),
        ("[policy]\nmax_num_ctx = -1\n", "policy.max_num_ctx must be a positive whole number"),
        ("[policy]\nclient_options = 'all'\n", "policy.client_options must be a list of names"),
        ("[policy]\nclient_options = ['num_gpus']\n", "policy.client_options names 'num_gpus'"),
        ("[policy]\nover_limit = 'cut'\n", "policy.over_limit must be one of reject, clamp"),
        ("[policy]\nmax_keep_alive = '-1m'\n", "policy.max_keep_alive must be a duration"),
        ("[policy]\nmin_keep_alive = '1h'\nmax_keep_alive = '5m'\n", "min_keep_alive is above"),
        ("[policy]\nmax_num_ctx = 8192\n[models.x]\noptions = { num_ctx = 16384 }\n", "models.x:"),
        (
            "[policy]\nmax_num_predict = 100\n[aliases.a]\nmodel = 'x'\nmax_tokens = 500\n",
            "aliases.a",
        ),
        ("[policy]\nmax_keep_alive = '1h'\n[models.x]\nkeep_alive = -1\n", "keep_alive is above"),
        ("[models.x\n", "is not valid TOML"),
    ],
)
def test_a_bad_file_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, text)
    assert str(caught.value).startswith(f"MODELS_FILE {tmp_path / 'models.toml'}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_alias_in_both_places_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"aliases.gpt-4o is also in MODEL_ALIASES; keep one"):
        read(tmp_path, EXAMPLE, MODEL_ALIASES="gpt-4o=llama3.2")


def test_model_aliases_may_not_point_at_an_alias_of_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"MODEL_ALIASES points 'gpt-4' at aliases.gpt-4o"):
        read(tmp_path, EXAMPLE, MODEL_ALIASES="gpt-4=gpt-4o")


def test_a_missing_file_is_named():
    with pytest.raises(ConfigError, match=r"^MODELS_FILE /nonexistent.toml: cannot be read"):
        Settings.from_env({"MODELS_FILE": "/nonexistent.toml"})


@pytest.mark.parametrize("entry", ["wsgi.py", "gunicorn.conf.py"])
def test_a_bad_models_file_stops_start_up_with_one_line(tmp_path, entry):
    path = tmp_path / "models.toml"
    path.write_text('[models."qwen3:8b"]\noptions = { num_ctx = "big" }\n')
    result = start_up(entry, MODELS_FILE=str(path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f'ollama-openai: MODELS_FILE {path}: models."qwen3:8b".options.num_ctx must be a whole '
        "number"
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (1.5, 1.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("0", 0.0),
        ("0s", 0.0),
        (-1, math.inf),
        ("-1m", math.inf),
        ("5", None),
        ("forever", None),
        (True, None),
        ("", None),
    ],
)
def test_keep_alive_is_read_as_ollama_reads_it(value, seconds):
    assert keep_alive_seconds(value) == seconds


# Runs gunicorn itself, with no fixture that would mark it.
@pytest.mark.e2e
def test_gunicorn_with_a_bad_models_file_stops_with_one_line(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text("[aliases.gpt-4o]\noptions = { num_ctx = 8192 }\n")
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        env={"MODELS_FILE": str(path), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ollama-openai: MODELS_FILE {path}: aliases.gpt-4o.model must name an Ollama model"
    ]
