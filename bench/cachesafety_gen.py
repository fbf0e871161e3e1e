"""CacheSafety trap data: the request builder and the slot values (see build_cachesafety_data.py)."""

from __future__ import annotations

import random
from typing import Any

MODELS = ["gpt-6.1-terra", "claude-sonnet-4-5", "gemini-3.5-flash", "deepseek-chat", "mistral-small-latest"]
SYSTEMS = [
    "You are the customer support assistant for Northwind Air. Be concise and polite.",
    "You are a senior Python engineer reviewing code. Point out bugs first.",
    "You are a helpful assistant for a travel booking site. Quote prices in the user's currency.",
    "You are a finance helper for a small business. Show your arithmetic.",
    "You are a patient maths tutor for high-school students.",
    "You are an assistant for a logistics company. Answer from the shipment data you are given.",
    "You are a data analyst. Answer with SQL when asked for a query.",
    "You are a general-purpose assistant. If you are unsure, say so.",
]
CONTEXT = [
    "Our warehouse in Rotterdam ships to 14 countries.",
    "The quarterly report is due at the end of the month.",
    "Orders above 200 euros ship for free.",
    "The customer has been with us since 2019 and has a premium plan.",
    "All prices on the site include VAT.",
    "The database has tables customers, orders and order_items.",
    "Our support team works Monday to Friday, 9:00 to 17:00 CET.",
    "Refunds are processed within five business days.",
    "The API rate limit is 600 requests per minute per key.",
    "The product catalogue was last updated on the first of the month.",
    "Flights are operated with Airbus A320 aircraft on short routes.",
    "Students are preparing for the final exam next week.",
]
HISTORY = [
    ("Hi, I have a question about my account.", "Of course, happy to help. What would you like to know?"),
    ("Can you help me with something quickly?", "Sure, go ahead."),
    ("I'm working on a report for my manager.", "Great, tell me what you need for it."),
    ("Thanks for the help earlier.", "You're welcome! Anything else?"),
]


def tool(name: str, desc: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


TOOLS = {
    "get_weather": tool(
        "get_weather",
        "Current weather for a city",
        {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        ["city"],
    ),
    "search_flights": tool(
        "search_flights",
        "Search flights between two airports on a date",
        {"from": {"type": "string"}, "to": {"type": "string"}, "date": {"type": "string", "format": "date"}},
        ["from", "to", "date"],
    ),
    "lookup_order": tool(
        "lookup_order", "Look up an order by id", {"order_id": {"type": "string"}}, ["order_id"]
    ),
    "convert_currency": tool(
        "convert_currency",
        "Convert an amount between currencies",
        {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
        ["amount", "from", "to"],
    ),
    "run_sql": tool("run_sql", "Run a read-only SQL query", {"query": {"type": "string"}}, ["query"]),
}


class Gen:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, items: list[Any]) -> Any:
        return self.rng.choice(items)

    def context(self) -> str:
        return " ".join(self.rng.sample(CONTEXT, self.rng.randint(2, 5)))

    def body(
        self,
        user: str,
        *,
        system: str | None = None,
        history: bool | None = None,
        tools: bool | None = None,
        with_context: bool | None = None,
    ) -> dict[str, Any]:
        """A realistic request around one user message."""
        rng = self.rng
        messages: list[dict[str, Any]] = [{"role": "system", "content": system or self.pick(SYSTEMS)}]
        if history if history is not None else rng.random() < 0.4:
            for u, a in rng.sample(HISTORY, rng.randint(1, 2)):
                messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        if with_context if with_context is not None else rng.random() < 0.6:
            user = f"Context: {self.context()}\n\n{user}"
        messages.append({"role": "user", "content": user})
        body: dict[str, Any] = {"model": self.pick(MODELS), "messages": messages}
        if rng.random() < 0.85:
            body["temperature"] = 0
        else:
            body["temperature"], body["seed"] = 0.7, rng.randint(1, 9999)
        if rng.random() < 0.5:
            body["max_tokens"] = self.pick([256, 512, 1024])
        if tools if tools is not None else rng.random() < 0.4:
            body["tools"] = [TOOLS[n] for n in rng.sample(sorted(TOOLS), rng.randint(1, 3))]
            body["tool_choice"] = "auto"
        return body

    def text_pair(self, a: str, b: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Two bodies identical except the last user message (same random choices for both)."""
        state = self.rng.getstate()
        body_a = self.body(a, **kw)
        self.rng.setstate(state)
        body_b = self.body(b, **kw)
        return body_a, body_b


# --- slot values ---------------------------------------------------------------------------------------
INGREDIENTS = [
    "wheat flour",
    "rice",
    "barley",
    "oats",
    "corn",
    "quinoa",
    "rye",
    "spelt",
    "buckwheat",
    "soy sauce",
]
CITIES = ["Lisbon", "Hanoi", "Toronto", "Nairobi", "Osaka", "Bogota", "Krakow", "Perth", "Dublin", "Lagos"]
COUNTRY_PAIRS = [
    ("Austria", "Australia"),
    ("Niger", "Nigeria"),
    ("Slovakia", "Slovenia"),
    ("Iran", "Iraq"),
    ("Sweden", "Switzerland"),
    ("Guinea", "Guinea-Bissau"),
    ("Dominica", "the Dominican Republic"),
    ("Mali", "Malawi"),
    ("Latvia", "Lithuania"),
    ("Colombia", "Bolivia"),
]
PEOPLE = ["Alice", "Bob", "Chen", "Dara", "Emeka", "Farah", "Giulia", "Hiro", "Ines", "Jonas"]
COMPANIES = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Ltd",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
]
LANGS = ["French", "German", "Spanish", "Italian", "Portuguese", "Dutch", "Japanese", "Vietnamese"]


QUESTIONS = [
    "What is the capital of Japan?",
    "How many days are in a leap year?",
    "What does HTTP stand for?",
    "How do I check the status of my order?",
    "What is the boiling point of water at sea level in Celsius?",
    "Who wrote Pride and Prejudice?",
    "How do I open a file in Python?",
    "What is 12 times 12?",
]
