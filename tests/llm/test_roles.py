"""Role settings from options: one builder for every command, and what reaches the server.

The CLI tests run the real commands against the scripted OpenAI server on 127.0.0.1 and look at
the Authorization header that arrived: the vLLM-style placeholder when the role has no key, the
real key when one is set, never the placeholder beside a key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import main
from ise_es.errors import ConfigError
from ise_es.llm.roles import role_config_from_options
from ise_es.store.sql import open_store
from tests.support.openai_server import RecordedRequest, Reply, ScriptedOpenAIServer

PLACEHOLDER = "Bearer EMPTY"


def options(role: str, **values: object) -> dict[str, object]:
    base: dict[str, object] = {
        f"{role}_model": "m",
        f"{role}_base_url": "http://127.0.0.1:9/v1",
        f"{role}_api_key_env": f"ISE_ES_{role.upper()}_API_KEY",
        f"{role}_temperature": None,
        f"{role}_max_tokens": None,
        f"{role}_timeout": 120.0,
        f"{role}_retries": 4,
    }
    base.update({f"{role}_{k}": v for k, v in values.items()})
    return base


def test_unset_default_variable_means_no_key() -> None:
    config = role_config_from_options("agent", options("agent"), {})
    assert config.api_key_env is None


def test_set_default_variable_is_used() -> None:
    config = role_config_from_options("agent", options("agent"), {"ISE_ES_AGENT_API_KEY": "k"})
    assert config.api_key_env == "ISE_ES_AGENT_API_KEY"


@pytest.mark.parametrize("word", ["none", "NONE", "None"])
def test_none_means_no_key_even_when_a_variable_of_that_name_exists(word: str) -> None:
    environ = {word: "x", "ISE_ES_USER_API_KEY": "k"}
    config = role_config_from_options("user", options("user", api_key_env=word), environ)
    assert config.api_key_env is None


def test_named_variable_that_is_unset_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"MY_VLLM_KEY \(--render-api-key-env\) is not set"):
        role_config_from_options("render", options("render", api_key_env="MY_VLLM_KEY"), {})


def test_every_option_reaches_the_config() -> None:
    opts = options("persona", temperature=0.3, max_tokens=77, timeout=9.0, retries=1)
    config = role_config_from_options("persona", opts, {})
    assert (config.role, config.model, config.base_url) == ("persona", "m", "http://127.0.0.1:9/v1")
    assert (config.temperature, config.max_tokens, config.timeout_s, config.max_retries) == (
        0.3,
        77,
        9.0,
        1,
    )


def test_missing_model_and_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--agent-model"):
        role_config_from_options("agent", options("agent", model=None), {})
    with pytest.raises(ConfigError, match="--agent-"):
        role_config_from_options("agent", options("agent", timeout=0.0), {})


# ------------------------------------------------------------------------------ commands


def _record(
    server: ScriptedOpenAIServer, tmp_path: Path, db: str, env: dict[str, str | None], *extra: str
) -> tuple[int, str]:
    intents = tmp_path / "intents.jsonl"
    intents.write_text(json.dumps({"id": "i1", "natural_language_intent": "Say hi."}) + "\n")
    server.script("u-model", Reply.user_turn("Say hi."), Reply.user_turn("Thanks.", completed=True))
    server.script("a-model", Reply(content="Hi."))
    url = server.base_url
    args = ["record", "--intents", str(intents), "--db", db, "--agent-model", "a-model"]
    args += ["--agent-base-url", url, "--user-model", "u-model", "--user-base-url", url]
    result = CliRunner().invoke(main, [*args, *extra], env=env)
    return result.exit_code, result.output


UNSET: dict[str, str | None] = {"ISE_ES_AGENT_API_KEY": None, "ISE_ES_USER_API_KEY": None}


def _auth(server: ScriptedOpenAIServer, model: str) -> set[str | None]:
    return {r.headers.get("authorization") for r in server.requests_for(model)}


def test_record_against_a_keyless_server_with_the_default_variables_unset(
    openai_server: ScriptedOpenAIServer, tmp_path: Path, sqlite_url: str
) -> None:
    code, out = _record(openai_server, tmp_path, sqlite_url, UNSET)
    assert code == 0, out
    assert _auth(openai_server, "a-model") == {PLACEHOLDER}
    assert _auth(openai_server, "u-model") == {PLACEHOLDER}


def test_record_sends_the_key_of_each_role_and_none_sends_no_key(
    openai_server: ScriptedOpenAIServer, tmp_path: Path, sqlite_url: str
) -> None:
    env: dict[str, str | None] = {"ISE_ES_AGENT_API_KEY": "sk-agent", "ISE_ES_USER_API_KEY": "x"}
    code, out = _record(openai_server, tmp_path, sqlite_url, env, "--user-api-key-env", "none")
    assert code == 0, out
    assert _auth(openai_server, "a-model") == {"Bearer sk-agent"}
    assert _auth(openai_server, "u-model") == {PLACEHOLDER}


def test_record_with_a_named_variable_that_is_unset_stops_before_recording(
    openai_server: ScriptedOpenAIServer, tmp_path: Path, sqlite_url: str
) -> None:
    env = {**UNSET, "MY_AGENT_KEY": None}
    code, out = _record(
        openai_server, tmp_path, sqlite_url, env, "--agent-api-key-env", "MY_AGENT_KEY"
    )
    assert code == 2
    assert out.strip().splitlines() == [
        "Error: role 'agent': environment variable MY_AGENT_KEY (--agent-api-key-env) is not "
        "set; export it, or pass --agent-api-key-env none for a server that wants no key"
    ]
    assert openai_server.requests == []
    with open_store(sqlite_url) as store:
        assert store.streams() == []


PEOPLE = [
    {
        "name": f"Person {i}",
        "role": "Analyst",
        "industry": industry,
        "expertise": ["SQL"],
        "experience_level": "Junior",
        "communication_style": "Casual",
        "work_context": "Works from Lima.",
        "common_goals": ["learn"],
        "tools_preference": [],
    }
    for i, industry in enumerate(["Retail", "Energy"])
]


def _personas(
    server: ScriptedOpenAIServer, db: str, env: dict[str, str | None], *extra: str
) -> Result:
    server.script("p-model", Reply(content=json.dumps({"personas": PEOPLE})))
    args = ["intents", "personas", "--count", "2", "--db", db, "--persona-model", "p-model"]
    args += ["--persona-base-url", server.base_url, "--persona-retries", "0", *extra]
    return CliRunner().invoke(main, args, env=env)


def _generate(
    server: ScriptedOpenAIServer, db: str, env: dict[str, str | None], *extra: str
) -> Result:
    def render(req: RecordedRequest) -> Reply:
        # The renderer checks that every sampled task is asked for; echo the prompt's tasks.
        prompt = req.messages[1]["content"]
        asks = [ln[2:] for ln in prompt.splitlines() if ln.startswith("- ") and "):" in ln]
        return Reply(content="Please do the following for me today. " + " Then ".join(asks))

    server.handle("r-model", render)
    args = ["intents", "generate", "--count", "1", "--db", db, "--render-model", "r-model"]
    args += ["--render-base-url", server.base_url, "--near-dup", "off", *extra]
    return CliRunner().invoke(main, args, env=env)


def test_intents_personas_and_generate_without_a_key(
    openai_server: ScriptedOpenAIServer, sqlite_url: str, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {
        "ISE_ES_PERSONA_API_KEY": None,
        "ISE_ES_RENDER_API_KEY": None,
        "ISE_ES_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = _personas(openai_server, sqlite_url, env)
    assert result.exit_code == 0, result.output
    result = _generate(openai_server, sqlite_url, env)
    assert result.exit_code == 0, result.output
    assert _auth(openai_server, "p-model") == {PLACEHOLDER}
    assert _auth(openai_server, "r-model") == {PLACEHOLDER}


def test_intents_personas_and_generate_with_keys(
    openai_server: ScriptedOpenAIServer, sqlite_url: str, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {
        "ISE_ES_PERSONA_API_KEY": "sk-persona",
        "VLLM_KEY": "sk-render",
        "ISE_ES_CACHE_DIR": str(tmp_path / "cache"),
    }
    assert _personas(openai_server, sqlite_url, env).exit_code == 0
    assert (
        _generate(openai_server, sqlite_url, env, "--render-api-key-env", "VLLM_KEY").exit_code == 0
    )
    assert _auth(openai_server, "p-model") == {"Bearer sk-persona"}
    assert _auth(openai_server, "r-model") == {"Bearer sk-render"}


@pytest.mark.parametrize("command", ["personas", "generate"])
def test_intents_with_a_named_variable_that_is_unset_is_refused(
    openai_server: ScriptedOpenAIServer, sqlite_url: str, tmp_path: Path, command: str
) -> None:
    env: dict[str, str | None] = {"NOPE_KEY": None, "ISE_ES_CACHE_DIR": str(tmp_path / "c")}
    if command == "personas":
        result = _personas(openai_server, sqlite_url, env, "--persona-api-key-env", "NOPE_KEY")
    else:
        assert _personas(openai_server, sqlite_url, env).exit_code == 0
        result = _generate(openai_server, sqlite_url, env, "--render-api-key-env", "NOPE_KEY")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: role ") and "NOPE_KEY" in line and "is not set" in line
    assert not openai_server.requests_for("r-model")
