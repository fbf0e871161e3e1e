"""Run `make run` in another terminal, then: .venv/bin/python examples/python_openai.py"""

import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("NMPROXY_URL", "http://127.0.0.1:8787/v1"),
                api_key=os.environ.get("NMPROXY_KEY", "unused-in-open-mode"))

resp = client.chat.completions.with_raw_response.create(
    model="demo-chat", messages=[{"role": "user", "content": "Say hello from the proxy"}], temperature=0)
completion = resp.parse()
print(completion.choices[0].message.content)
print("receipt:", resp.headers.get("x-nextmodel-receipt-id"), "cost USD:", resp.headers.get("x-nextmodel-cost-usd"))

stream = client.chat.completions.create(
    model="demo-chat", messages=[{"role": "user", "content": "Stream a short answer"}], stream=True)
print("".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices))
