"""Build the shipped CacheSafety trap file (deterministic: same script, same bytes).

    .venv/bin/python bench/build_cachesafety_data.py   # writes nextmodel_proxy/cachesafety/data/traps.jsonl

Every text below was written for this project (no third-party data); see the data README for the licence.
Each pair is two chat-completions bodies that differ only in the family's dimension, built on realistic
requests: a system prompt, sometimes earlier turns, sometimes tools, deterministic parameters (temperature 0
or a seed) so the exact cache would store them.
"""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

OUT = Path(__file__).resolve().parent.parent / "nextmodel_proxy" / "cachesafety" / "data" / "traps.jsonl"
PER_FAMILY = 80
SEED = 20261206

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


def negation(g: Gen) -> tuple[Any, Any]:
    items = ", ".join(g.rng.sample(INGREDIENTS, 5))
    year = g.rng.randint(2018, 2025)
    city = g.pick(CITIES)
    status = g.pick(["shipped", "cancelled", "refunded", "pending"])
    a, b = g.pick(
        [
            (
                f"Which of these ingredients contain gluten: {items}?",
                f"Which of these ingredients do not contain gluten: {items}?",
            ),
            (
                f"Write a SQL query that selects customers who placed an order in {year}.",
                f"Write a SQL query that selects customers who have not placed an order in {year}.",
            ),
            (
                f"Return the orders whose status is {status}.",
                f"Return the orders whose status is not {status}.",
            ),
            (
                f"Should I include flights that stop in {city}?",
                f"Should I exclude flights that stop in {city}?",
            ),
            (
                f"Explain why the refund for order {year}-{status} was approved.",
                f"Explain why the refund for order {year}-{status} was not approved.",
            ),
            (
                f"List the cities we ship to that are in the EU, starting with {city}.",
                f"List the cities we ship to that are not in the EU, starting with {city}.",
            ),
        ]
    )
    return g.text_pair(a, b)


def numbers(g: Gen) -> tuple[Any, Any]:
    whole, frac = g.rng.randint(1, 9), g.rng.randint(1, 9)
    x, y = (
        (f"{whole}.{frac}", f"{whole}{frac}") if g.rng.random() < 0.5 else (str(whole * 10), str(whole * 100))
    )
    big = g.rng.randint(2, 9)
    a, b = g.pick(
        [
            (f"Convert {x} km to miles.", f"Convert {y} km to miles."),
            (f"What is {x} multiplied by 12?", f"What is {y} multiplied by 12?"),
            (
                f"Transfer {big},000 EUR to the savings account.",
                f"Transfer {big}.000 EUR to the savings account, which is {big} euros.",
            ),
            (
                f"Our order needs {x} pallets. How many trucks is that if each takes 10?",
                f"Our order needs {y} pallets. How many trucks is that if each takes 10?",
            ),
            (
                f"Set the API rate limit to {x} requests per second.",
                f"Set the API rate limit to {y} requests per second.",
            ),
        ]
    )
    return g.text_pair(a, b)


def dates(g: Gen) -> tuple[Any, Any]:
    d, m = g.rng.randint(1, 9), g.rng.randint(10, 12)
    year = g.rng.randint(2020, 2027)
    a, b = g.pick(
        [
            (
                f"What day of the week is {m}/{d}/{year}?",
                f"What day of the week is {m // 10}/{m % 10}{d}/{year}?",
            ),
            (f"Book the meeting room for {year}-0{d}-{m}.", f"Book the meeting room for {year}-{m}-0{d}."),
            (
                f"How many days are there between 1 January {year} and {d} March {year}?",
                f"How many days are there between 1 January {year} and {d} May {year}?",
            ),
            (
                f"Find flights from Lisbon to Dublin on {d} June {year}.",
                f"Find flights from Lisbon to Dublin on {d} July {year}.",
            ),
            (f"Was {year} a leap year?", f"Was {year + 1} a leap year?"),
        ]
    )
    return g.text_pair(a, b)


def units(g: Gen) -> tuple[Any, Any]:
    n = g.rng.randint(2, 95)
    a, b = g.pick(
        [
            (f"Convert {n} kg to pounds.", f"Convert {n} lb to kilograms."),
            (
                f"The prescribed dose is {n} mg twice a day. How much per week?",
                f"The prescribed dose is {n} mcg twice a day. How much per week?",
            ),
            (f"What is {n} °C in Fahrenheit?", f"What is {n} °F in Celsius?"),
            (
                f"How long does it take to drive {n} miles at 60 mph?",
                f"How long does it take to drive {n} km at 60 mph?",
            ),
            (
                f"Our parcel weighs {n} g. Which postage band is that?",
                f"Our parcel weighs {n} kg. Which postage band is that?",
            ),
        ]
    )
    return g.text_pair(a, b)


def entity_swap(g: Gen) -> tuple[Any, Any]:
    c1, c2 = g.pick(COUNTRY_PAIRS)
    p1, p2 = g.rng.sample(PEOPLE, 2)
    k1, k2 = g.rng.sample(COMPANIES, 2)
    a, b = g.pick(
        [
            (f"What is the capital of {c1}?", f"What is the capital of {c2}?"),
            (f"What currency is used in {c1}?", f"What currency is used in {c2}?"),
            (f"Summarise the last annual report of {k1}.", f"Summarise the last annual report of {k2}."),
            (
                f"Draft a reply to {p1} confirming the refund.",
                f"Draft a reply to {p2} confirming the refund.",
            ),
            (
                f"Do we need a visa for a business trip to {c1}?",
                f"Do we need a visa for a business trip to {c2}?",
            ),
        ]
    )
    return g.text_pair(a, b)


def word_order(g: Gen) -> tuple[Any, Any]:
    p1, p2 = g.rng.sample(PEOPLE, 2)
    l1, l2 = g.rng.sample(LANGS, 2)
    x, y = g.rng.sample(range(3, 99), 2)
    a, b = g.pick(
        [
            (
                f"{p1} owes {p2} 50 euros. Who should pay whom?",
                f"{p2} owes {p1} 50 euros. Who should pay whom?",
            ),
            (
                f"Translate from {l1} to {l2}: 'the meeting is cancelled'.",
                f"Translate from {l2} to {l1}: 'the meeting is cancelled'.",
            ),
            (f"Subtract {x} from {y}.", f"Subtract {y} from {x}."),
            (
                "Is the set of customers a subset of the set of users?",
                "Is the set of users a subset of the set of customers?",
            ),
            (
                f"Write an email from {p1} to {p2} about the delay.",
                f"Write an email from {p2} to {p1} about the delay.",
            ),
            (
                f"Did {x} orders arrive before {y} orders were shipped?",
                f"Did {y} orders arrive before {x} orders were shipped?",
            ),
        ]
    )
    return g.text_pair(a, b)


def system_prompt(g: Gen) -> tuple[Any, Any]:
    s1, s2 = g.pick(
        [
            ("Answer in one short sentence.", "Answer in detail, with examples and caveats."),
            ("Reply only with valid JSON.", "Reply in plain prose, no JSON."),
            (
                "You are the support assistant for Northwind Air.",
                "You are the support assistant for Blue Rail trains.",
            ),
            ("Always answer in French.", "Always answer in English."),
            ("You are a Python expert.", "You are a Rust expert."),
            ("Prices are in USD.", "Prices are in EUR."),
        ]
    )
    question = g.pick(
        [
            "How do I change my booking?",
            "What is the best way to read a large file?",
            "Summarise our refund policy.",
            "How much is a checked bag?",
            "Explain what a mutex is.",
            "What should I do if my delivery is late?",
        ]
    )
    state = g.rng.getstate()
    a = g.body(question, system=s1)
    g.rng.setstate(state)
    return a, g.body(question, system=s2)


def tools_family(g: Gen) -> tuple[Any, Any]:
    a = g.body(f"What's the weather in {g.pick(CITIES)} and can I fly there tomorrow?", tools=True)
    b = copy.deepcopy(a)
    names = [t["function"]["name"] for t in a["tools"]]
    if g.rng.random() < 0.5:
        extra = [n for n in sorted(TOOLS) if n not in names]
        b["tools"] = a["tools"] + [TOOLS[g.pick(extra)]] if extra else a["tools"][:1]
    else:
        variant = copy.deepcopy(TOOLS["get_weather"])
        variant["function"]["parameters"]["properties"]["unit"]["enum"] = ["fahrenheit"]
        b["tools"] = [variant if t["function"]["name"] == "get_weather" else t for t in a["tools"]]
        if b["tools"] == a["tools"]:
            b["tools"] = a["tools"] + [variant]
    return a, b


def tool_choice(g: Gen) -> tuple[Any, Any]:
    a = g.body(f"Look up order {g.rng.randint(10000, 99999)} and tell me when it ships.", tools=True)
    b = copy.deepcopy(a)
    first = a["tools"][0]["function"]["name"]
    b["tool_choice"] = g.pick(["none", "required", {"type": "function", "function": {"name": first}}])
    return a, b


def model_family(g: Gen) -> tuple[Any, Any]:
    a = g.body(
        g.pick(
            [
                "Write a haiku about autumn.",
                "Explain recursion to a child.",
                "Review this function: def f(x): return x*2",
                "Summarise the plot of Hamlet in three lines.",
                "What is 17% of 2,340?",
            ]
        )
    )
    b = copy.deepcopy(a)
    b["model"] = g.pick([m for m in MODELS if m != a["model"]])
    return a, b


def _param_pair(g: Gen, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> tuple[Any, Any]:
    a = g.body(
        g.pick(
            [
                "Write a product description for a steel water bottle.",
                "Give me five names for a bakery.",
                "Explain how HTTPS works.",
                "Draft a polite reminder about an unpaid invoice.",
                "List the steps to reset a router.",
            ]
        )
    )
    b = copy.deepcopy(a)
    change(a, b)
    return a, b


def temperature(g: Gen) -> tuple[Any, Any]:
    def change(a: dict[str, Any], b: dict[str, Any]) -> None:
        a["temperature"] = 0
        a.pop("seed", None)
        b.pop("seed", None)
        b["temperature"] = g.pick([0.7, 1, 1.2])

    return _param_pair(g, change)


def seed(g: Gen) -> tuple[Any, Any]:
    def change(a: dict[str, Any], b: dict[str, Any]) -> None:
        a["temperature"] = b["temperature"] = 0.8
        a["seed"] = g.rng.randint(1, 5000)
        b["seed"] = a["seed"] + g.rng.randint(1, 5000)

    return _param_pair(g, change)


def max_tokens(g: Gen) -> tuple[Any, Any]:
    def change(a: dict[str, Any], b: dict[str, Any]) -> None:
        a["max_tokens"] = g.pick([512, 1024, 2048])
        b["max_tokens"] = g.pick([16, 32, 64])

    return _param_pair(g, change)


def response_format(g: Gen) -> tuple[Any, Any]:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
        },
    }

    def change(a: dict[str, Any], b: dict[str, Any]) -> None:
        a.pop("response_format", None)
        b["response_format"] = g.pick([{"type": "json_object"}, schema])

    return _param_pair(g, change)


def history(g: Gen) -> tuple[Any, Any]:
    topic_a, topic_b, follow = g.pick(
        [
            (
                "Compare the train and the plane from Paris to London.",
                "Compare the train and the plane from Paris to Rome.",
                "Which one is faster?",
            ),
            (
                "My budget is 500 euros for a laptop.",
                "My budget is 2,000 euros for a laptop.",
                "What should I buy?",
            ),
            (
                "Here is my function: def add(a, b): return a - b",
                "Here is my function: def add(a, b): return a + b",
                "Is it correct?",
            ),
            ("I live in Oslo.", "I live in Singapore.", "Do I need a winter coat in January?"),
            (
                "The patient is 8 years old.",
                "The patient is 68 years old.",
                "What is the usual ibuprofen dose?",
            ),
            (
                "Our order 4411 was shipped yesterday.",
                "Our order 4411 was cancelled yesterday.",
                "When will it arrive?",
            ),
            ("List three European capitals.", "List three Asian capitals.", "Now sort them by population."),
        ]
    )
    reply = "Sure, noted. What would you like to know?"
    system = g.pick(SYSTEMS)
    state = g.rng.getstate()
    a = g.body(follow, system=system, history=False, with_context=False)
    g.rng.setstate(state)
    b = g.body(follow, system=system, history=False, with_context=False)
    a["messages"][1:1] = [{"role": "user", "content": topic_a}, {"role": "assistant", "content": reply}]
    b["messages"][1:1] = [{"role": "user", "content": topic_b}, {"role": "assistant", "content": reply}]
    return a, b


def language(g: Gen) -> tuple[Any, Any]:
    a, b = g.pick(
        [
            ("What is the capital of France?", "¿Cuál es la capital de Francia?"),
            ("How do I reset my password?", "Wie setze ich mein Passwort zurück?"),
            ("Summarise our refund policy.", "Résumez notre politique de remboursement."),
            ("What time does support open?", "A che ora apre l'assistenza?"),
            ("Explain what an invoice is.", "Explique o que é uma fatura."),
            ("Translate 'good morning' into Italian.", "Translate 'good morning' into Portuguese."),
        ]
    )
    return g.text_pair(a, b, with_context=False)


# --- safe families --------------------------------------------------------------------------------------
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


def exact_repeat(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS))
    return a, copy.deepcopy(a)


def whitespace_case(g: Gen) -> tuple[Any, Any]:
    q = g.pick(QUESTIONS)
    variant = g.pick([q + "  ", "  " + q, q.replace(" ", "  ", 2), q[0].lower() + q[1:], q + "\n"])
    return g.text_pair(q, variant)


def _reorder(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


def key_order(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS), tools=g.rng.random() < 0.6)
    return a, _reorder(a)


def neutral_fields(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS))
    b = copy.deepcopy(a)
    change = g.pick(["user", "metadata", "stream", "float", "store"])
    if change == "user":
        b["user"] = f"user-{g.rng.randint(1, 999)}"
    elif change == "metadata":
        b["metadata"] = {"ticket": str(g.rng.randint(1000, 9999))}
    elif change == "stream":
        b["stream"] = True
    elif change == "float":
        a["top_p"], b["top_p"] = 1, 1.0
        b["temperature"] = float(a["temperature"])
    else:
        b["store"] = False
    return a, b


def history_irrelevant(g: Gen) -> tuple[Any, Any]:
    q = g.pick(QUESTIONS)
    system = g.pick(SYSTEMS)
    state = g.rng.getstate()
    a = g.body(q, system=system, history=False)
    g.rng.setstate(state)
    b = g.body(q, system=system, history=False)
    u, r = g.pick(HISTORY)
    b["messages"][1:1] = [{"role": "user", "content": u}, {"role": "assistant", "content": r}]
    return a, b


TRAPS: dict[str, Callable[[Gen], tuple[Any, Any]]] = {
    "negation": negation,
    "numbers": numbers,
    "dates": dates,
    "units": units,
    "entity-swap": entity_swap,
    "word-order": word_order,
    "system-prompt": system_prompt,
    "tools": tools_family,
    "tool-choice": tool_choice,
    "model": model_family,
    "temperature": temperature,
    "seed": seed,
    "max-tokens": max_tokens,
    "response-format": response_format,
    "history": history,
    "language": language,
}
SAFE: dict[str, Callable[[Gen], tuple[Any, Any]]] = {
    "exact-repeat": exact_repeat,
    "whitespace-case": whitespace_case,
    "key-order": key_order,
    "answer-neutral-fields": neutral_fields,
    "history-irrelevant": history_irrelevant,
}


def build() -> list[dict[str, Any]]:
    rows = []
    for families, same in ((TRAPS, False), (SAFE, True)):
        for family, make in families.items():
            g = Gen(random.Random(f"{SEED}:{family}"))
            for i in range(PER_FAMILY):
                a, b = make(g)
                rows.append(
                    {"id": f"{family}-{i + 1:03d}", "family": family, "same_answer": same, "a": a, "b": b}
                )
    return rows


def main() -> int:
    rows = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    print(f"wrote {len(rows)} pairs to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
