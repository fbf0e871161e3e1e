"""CacheSafety trap data: the trap families (same_answer false), one function a family (a, b)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from cachesafety_gen import (  # noqa: E402  (bench/ is on sys.path, like run.py's loadgen)
    CITIES,
    COMPANIES,
    COUNTRY_PAIRS,
    INGREDIENTS,
    LANGS,
    MODELS,
    PEOPLE,
    SYSTEMS,
    TOOLS,
    Gen,
)  # fmt: skip


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
