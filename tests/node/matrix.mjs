// The official OpenAI Node SDK against a running NextModel Proxy. Usage: node matrix.mjs <base-url>
// Prints one JSON object: what the SDK handed back for each scenario (or {error}); the Python test judges it.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-node-client", maxRetries: 0, timeout: 20000 });
const ask = [{ role: "user", content: "What is the weather in Paris today?" }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};

async function chat() {
  const r = await client.chat.completions.create({ model: "demo-chat", messages: ask });
  return { content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
}

async function stream() {
  const s = await client.chat.completions.create({
    model: "demo-chat", messages: ask, stream: true, stream_options: { include_usage: true },
  });
  let content = "", chunks = 0, usage = null, finish = null;
  for await (const chunk of s) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      content += c.delta.content ?? "";
      finish = c.finish_reason ?? finish;
    }
  }
  return { content, chunks, usage, finish };
}

async function tools() {
  const first = await client.chat.completions.create({ model: "demo-chat", messages: ask, tools: [weather] });
  const msg = first.choices[0].message;
  const call = msg.tool_calls[0];
  const second = await client.chat.completions.create({
    model: "demo-chat",
    tools: [weather],
    messages: [...ask, msg, { role: "tool", tool_call_id: call.id, content: "18C and sunny" }],
  });
  return {
    finish: first.choices[0].finish_reason,
    name: call.function.name,
    args: JSON.parse(call.function.arguments),
    final: second.choices[0].message.content,
    final_finish: second.choices[0].finish_reason,
  };
}

async function streamTools() {
  // The SDK's stream helper assembles tool-call deltas the way agent frameworks do.
  const runner = client.chat.completions.stream({ model: "demo-chat", messages: ask, tools: [weather] });
  const done = await runner.finalChatCompletion();
  const call = done.choices[0].message.tool_calls[0];
  return { name: call.function.name, args: JSON.parse(call.function.arguments), finish: done.choices[0].finish_reason };
}

async function embeddings() {
  // No encoding_format: the SDK asks for base64 and decodes it to floats itself.
  const dflt = await client.embeddings.create({ model: "demo-embed", input: ["red apples", "tax law"], dimensions: 64 });
  const floats = await client.embeddings.create({
    model: "demo-embed", input: ["red apples", "tax law"], dimensions: 64, encoding_format: "float",
  });
  // What actually went over the wire when the SDK chose the encoding: base64 text, not numbers.
  const raw = await client.embeddings.create({ model: "demo-embed", input: "red apples", dimensions: 64 }).asResponse();
  const wire = await raw.json();
  return {
    wire_type: typeof wire.data[0].embedding,
    default: dflt.data.map((d) => Array.from(d.embedding)),
    float: floats.data.map((d) => d.embedding),
    usage: dflt.usage,
  };
}

async function upstreamChat() {
  const r = await client.chat.completions.create({ model: "fake-basic", messages: [{ role: "user", content: "hi" }] });
  return { content: r.choices[0].message.content, usage: r.usage };
}

const scenarios = { chat, stream, tools, streamTools, embeddings, upstreamChat };
const out = {};
for (const [name, run] of Object.entries(scenarios)) {
  try {
    out[name] = await run();
  } catch (err) {
    out[name] = { error: `${err?.constructor?.name}: ${err?.message}` };
  }
}
process.stdout.write(JSON.stringify(out));
