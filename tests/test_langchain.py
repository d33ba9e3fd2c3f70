"""LangChain's OpenAI integration (``langchain-openai``) against the gateway: ChatOpenAI's
invoke, stream and bind_tools (streamed tool calls aggregated), and OpenAIEmbeddings."""

import httpx
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.test_tools import WEATHER

ASK = "Weather in Tokyo?"


@pytest.fixture
def http_client():
    """Our own connection pool, closed after each test: LangChain's shared default pool would
    keep connections to gunicorn open and make its graceful shutdown wait for them."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def chat(server, ollama, http_client):
    return ChatOpenAI(
        model="llama3.2",
        base_url=f"{server.url}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=http_client,
    )


def test_invoke(chat, ollama):
    message = chat.invoke(ASK)
    assert message.content == ollama.replies[-1]
    assert message.usage_metadata["output_tokens"] > 0


def test_stream(chat, ollama):
    chunks = list(chat.stream(ASK))
    assert "".join(chunk.content for chunk in chunks) == ollama.replies[-1]


def test_bind_tools_round_trip_with_streamed_tool_calls(chat, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    with_tools = chat.bind_tools([WEATHER])
    aggregated = None
    for chunk in with_tools.stream(ASK):
        aggregated = chunk if aggregated is None else aggregated + chunk
    (call,) = aggregated.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": "Tokyo"}
    assert call["id"].startswith("call_")

    history = [HumanMessage(ASK), aggregated, ToolMessage("sunny", tool_call_id=call["id"])]
    final = with_tools.invoke(history)
    assert final.content == "From the tools: get_weather says sunny"
    sent = ollama.last_request("/api/chat").body["messages"]
    assert sent[-1] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_openai_embeddings_without_token_arrays(server, ollama, http_client):
    # LangChain tokenizes with tiktoken and sends token ids unless told not to; Ollama models
    # need text (and tiktoken would download its tables from the internet).
    embeddings = OpenAIEmbeddings(
        model="nomic-embed-text",
        base_url=f"{server.url}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=http_client,
        check_embedding_ctx_length=False,
    )
    vectors = embeddings.embed_documents(["first", "second"])
    assert [len(vector) for vector in vectors] == [768, 768]
    assert embeddings.embed_query("first") == pytest.approx(vectors[0])
    assert ollama.last_request("/api/embed").body["input"] == ["first"]
