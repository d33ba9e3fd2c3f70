// Drives the gateway with the Vercel AI SDK (`ai` and its `@ai-sdk/openai` provider). Run by
// tests/test_ai_sdk.py, one scenario at a time:
//   node tests/js/ai_sdk_check.mjs http://127.0.0.1:PORT/v1 SCENARIO
// Prints one JSON object: what the SDK gave back, and the requests it sent (recorded by the
// provider's `fetch`, so that a body the gateway refuses is seen too).
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, generateText, isStepCount, streamText, tool } from "ai";
import { z } from "zod";

const [baseURL, scenario] = process.argv.slice(2);
const sent = [];
async function recordingFetch(url, init) {
  const answer = await fetch(url, init);
  const entry = { path: new URL(url).pathname, body: JSON.parse(init.body), status: answer.status };
  if (!answer.ok) entry.error = await answer.clone().text();
  sent.push(entry);
  return answer;
}
const openai = createOpenAI({ baseURL, apiKey: "test-key", fetch: recordingFetch });
const MODEL = "llama3.2";
// Every call once: a failure is the test's to see, not the SDK's to retry.
const once = { maxRetries: 0 };
const weather = tool({
  description: "The weather in a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `sunny in ${city}`,
});

async function generate(model, options) {
  const result = await generateText({ model, ...once, ...options });
  return {
    text: result.text,
    usage: result.usage,
    steps: result.steps.length,
    responseId: result.providerMetadata?.openai?.responseId ?? null,
    messages: result.response.messages,
  };
}

async function stream(model, options) {
  const errors = [];
  const result = streamText({ model, ...once, ...options, onError: ({ error }) => errors.push(error) });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  if (errors.length) throw errors[0];
  return { text, usage: await result.totalUsage, steps: (await result.steps).length };
}

async function conversation(options) {
  const messages = [{ role: "user", content: "My name is Ann." }];
  const first = await generate(openai(MODEL), { messages, ...options });
  messages.push(...first.messages, { role: "user", content: "What is my name?" });
  return { first, second: await generate(openai(MODEL), { messages, ...options }) };
}

const tools = { tools: { get_weather: weather }, stopWhen: isStepCount(2) };
const ask = { instructions: "Answer briefly.", prompt: "Say hello" };
const SCENARIOS = {
  "responses-generate": () => generate(openai(MODEL), ask),
  "responses-stream": () => stream(openai(MODEL), ask),
  "responses-tools": () => generate(openai(MODEL), { prompt: "Weather in Tokyo?", ...tools }),
  "responses-tools-stream": () => stream(openai(MODEL), { prompt: "Weather in Tokyo?", ...tools }),
  "chat-generate": () => generate(openai.chat(MODEL), ask),
  "chat-stream": () => stream(openai.chat(MODEL), ask),
  "chat-tools": () => generate(openai.chat(MODEL), { prompt: "Weather in Tokyo?", ...tools }),
  "unknown-model": () => generate(openai("no-such-model"), { prompt: "Say hello" }),
  // The gateway keeps what it answers (store defaults to true): the second turn names the first.
  "previous-response": async () => {
    const first = await generate(openai(MODEL), { prompt: "My name is Ann." });
    const second = await generate(openai(MODEL), {
      prompt: "What is my name?",
      providerOptions: { openai: { previousResponseId: first.responseId } },
    });
    return { first, second };
  },
  // The SDK's own way to hold a conversation: the history grows by `response.messages`. With
  // store on (its default) it sends earlier answers as `item_reference`s; with store off, whole.
  history: () => conversation({ providerOptions: { openai: { store: false } } }),
  "history-stored": () => conversation({}),
};

let outcome;
try {
  outcome = { result: await SCENARIOS[scenario]() };
} catch (error) {
  if (!APICallError.isInstance(error)) throw error;
  outcome = {
    error: {
      name: error.name,
      statusCode: error.statusCode,
      message: error.message,
      isRetryable: error.isRetryable,
    },
  };
}
console.log(JSON.stringify({ ...outcome, sent }));
