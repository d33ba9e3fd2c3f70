// Drives the gateway with the official OpenAI JavaScript SDK: chat, a stream, tool calls
// (plain and through the SDK's stream helper) and embeddings. Run by tests/test_js_sdk.py:
//   node tests/js/sdk_check.mjs http://127.0.0.1:PORT/v1
// Assertions fail with a message and a non-zero exit; on success it prints one JSON summary.
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "test-key", maxRetries: 0 });
const ask = [{ role: "user", content: "Weather in Tokyo?" }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const answer = await client.chat.completions.create({ model: "llama3.2", messages: ask });
assert.equal(answer.object, "chat.completion");
assert.equal(answer.choices[0].finish_reason, "stop");
assert.ok(answer.usage.total_tokens > 0);

let streamed = "";
let finish = null;
const stream = await client.chat.completions.create({
  model: "llama3.2",
  messages: ask,
  stream: true,
  stream_options: { include_usage: true },
});
let usage = null;
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
  usage = chunk.usage ?? usage;
}
assert.equal(streamed, answer.choices[0].message.content);
assert.equal(finish, "stop");
assert.ok(usage.completion_tokens > 0);

const called = await client.chat.completions.create({
  model: "llama3.2",
  messages: ask,
  tools: [weather],
});
const [call] = called.choices[0].message.tool_calls;
assert.equal(called.choices[0].finish_reason, "tool_calls");
assert.equal(call.type, "function");
assert.deepEqual(JSON.parse(call.function.arguments), { city: "Tokyo" });

const final = await client.chat.completions.create({
  model: "llama3.2",
  messages: [...ask, called.choices[0].message, { role: "tool", tool_call_id: call.id, content: "sunny" }],
  tools: [weather],
});
assert.equal(final.choices[0].message.content, "From the tools: get_weather says sunny");

// The SDK's stream helper assembles streamed tool-call deltas into whole calls.
const runner = client.chat.completions.stream({ model: "llama3.2", messages: ask, tools: [weather] });
const assembled = await runner.finalChatCompletion();
const [streamedCall] = assembled.choices[0].message.tool_calls;
assert.equal(assembled.choices[0].finish_reason, "tool_calls");
assert.equal(streamedCall.function.name, "get_weather");
assert.deepEqual(JSON.parse(streamedCall.function.arguments), { city: "Tokyo" });
assert.ok(streamedCall.id.startsWith("call_"));

// Without encoding_format the JS SDK asks for base64 and decodes it, as the Python SDK does.
const embedded = await client.embeddings.create({ model: "nomic-embed-text", input: ["a", "b"] });
assert.deepEqual(embedded.data.map((item) => item.index), [0, 1]);
assert.equal(embedded.data[0].embedding.length, 768);
assert.equal(typeof embedded.data[0].embedding[0], "number");

console.log(
  JSON.stringify({
    chat: answer.choices[0].message.content,
    streamed,
    toolCall: call.function.name,
    final: final.choices[0].message.content,
    streamedToolCall: streamedCall.function.name,
    embeddings: embedded.data.length,
  }),
);
