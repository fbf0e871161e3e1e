"""One upstream session serves every client: a cookie an upstream sets for one caller must never be sent back
on another caller's request (nor on the same caller's: the proxy is not a browser)."""

from __future__ import annotations

import openai


async def test_a_cookie_set_by_the_upstream_is_never_sent_back(write_config, start_proxy, fake_upstream):
    fake_upstream.state.extra_headers["Set-Cookie"] = "session=tenant-a-secret; Path=/"
    # by host name (still loopback): aiohttp's default cookie jar ignores cookies from bare IP addresses, and
    # real upstreams are named hosts
    fake_upstream.url = fake_upstream.url.replace("127.0.0.1", "localhost")
    proxy = await start_proxy(write_config(""))
    client = openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0)
    for text in ("first caller", "second caller"):
        answer = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": text}]
        )
        assert answer.choices[0].message.content == f"Echo: {text}"
    await client.close()
    sent = fake_upstream.state.headers
    assert len(sent) == 2
    assert all("cookie" not in {name.lower() for name in headers} for headers in sent), sent[1]
