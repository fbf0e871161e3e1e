// Run `make run` in another terminal, then: cd examples && npm install && node node_openai.mjs
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.NMPROXY_URL ?? "http://127.0.0.1:8787/v1",
  apiKey: process.env.NMPROXY_KEY ?? "unused-in-open-mode",
});

const completion = await client.chat.completions.create({
  model: "demo-chat",
  messages: [{ role: "user", content: "Say hello from Node" }],
  temperature: 0,
});
console.log(completion.choices[0].message.content);

const stream = await client.chat.completions.create({
  model: "demo-chat",
  messages: [{ role: "user", content: "Stream a short answer" }],
  stream: true,
});
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
console.log(text);
