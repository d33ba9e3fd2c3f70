"""The Agents SDK (``openai-agents``) with its default Responses model: an agent with a function
tool, run and streamed through the gateway against the stand-in."""

import asyncio

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

# Traces would be exported to OpenAI's servers, which these machines cannot reach.
set_tracing_disabled(True)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def run_agent(server, prompt, streamed):
    """The agent's final output (and the kinds of stream events, when streamed)."""
    async with AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="test-key", max_retries=0
    ) as client:
        model = OpenAIResponsesModel(model="llama3.2", openai_client=client)
        agent = Agent(
            name="weather", instructions="Use the tools.", tools=[get_weather], model=model
        )
        if not streamed:
            return (await Runner.run(agent, prompt)).final_output, []
        result = Runner.run_streamed(agent, prompt)
        kinds = [event.type async for event in result.stream_events()]
        return result.final_output, kinds


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
def test_agent_calls_its_tool_and_answers_from_the_result(server, ollama, streamed):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    final, kinds = asyncio.run(run_agent(server, "Weather in Tokyo?", streamed))
    if streamed:
        assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert final == "From the tools: get_weather says sunny in Tokyo"
    first, second = [r.body for r in ollama.requests if r.path == "/api/chat"]
    assert first["stream"] is streamed
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather"]
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "sunny in Tokyo",
        "tool_name": "get_weather",
    }
