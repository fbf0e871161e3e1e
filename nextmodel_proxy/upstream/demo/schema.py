"""A JSON value that validates against a JSON schema, built deterministically (pure; no I/O).

Covers what OpenAI structured outputs, pydantic and tool definitions use: type (and lists of types), enum,
const, properties/required/additionalProperties, items/prefixItems/minItems/maxItems/uniqueItems,
$ref/$defs/definitions, anyOf/oneOf/allOf, string minLength/maxLength/format/pattern, numeric bounds and
multipleOf. Strings and numbers come from the user's words where a property name suggests it (a `city` gets the
place named in the prompt, an `age` the number in it), otherwise plain placeholders. Recursive schemas stop
growing past a fixed depth (optional parts left out, nullable branches chosen, arrays at their minimum).
"""

from __future__ import annotations

import re
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import xxhash

MAX_DEPTH = 6
# Bounds on absurd schemas (a self-referencing $ref, minItems: 10**9): past these the value is cut short and
# may not validate, but the answer stays small and quick.
HARD_DEPTH = 48
MAX_ITEMS = 1000
MAX_STRING = 100_000
MAX_NODES = 20_000
MAX_CHARS = 1_000_000  # all strings of one value together
_QUERY_NAMES = {"query", "q", "question", "prompt", "text", "input", "search", "message", "content", "topic"}
_PLACE_NAMES = {"location", "city", "place", "country", "where", "destination", "region"}
_NAME_NAMES = {"name", "title", "subject", "person", "company", "author", "who"}
_PLACE_PREPOSITIONS = {"in", "at", "to", "from", "near", "around", "into", "via"}
_NAMED_FORMATS = (("email", "email"), ("url", "uri"), ("link", "uri"), ("website", "uri"), ("date", "date"))
_FORMATS = {
    "date": "2025-01-15",
    "date-time": "2025-01-15T12:00:00Z",
    "time": "12:00:00",
    "email": "demo@example.com",
    "idn-email": "demo@example.com",
    "uri": "https://example.com/demo",
    "iri": "https://example.com/demo",
    "uri-reference": "https://example.com/demo",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "duration": "P1D",
}
_KINDS = frozenset({"null", "boolean", "object", "array", "integer", "number", "string"})
_WORD = re.compile(r"[A-Za-z][\w'-]*|\d+(?:\.\d+)?")


class Prompt:
    """What the generator may borrow from the request: its last user text and a seed."""

    __slots__ = ("text", "seed", "names", "numbers")

    def __init__(self, text: str, seed: int) -> None:
        self.text = " ".join(text.split())
        self.seed = seed & 0xFFFF_FFFF_FFFF_FFFF
        self.names = _proper_names(self.text)
        self.numbers = [float(w) for w in _WORD.findall(self.text) if w[0].isdigit()]


def _proper_names(text: str) -> list[tuple[str, bool]]:
    """Runs of capitalised words that do not open a sentence, each marked True when a place preposition
    leads it ("John Smith lives in Paris" -> [("John Smith", False), ("Paris", True)])."""
    raw = text.split()
    words = [w.strip(".,;:!?\"'()") for w in raw]
    runs: list[tuple[str, bool]] = []
    run: list[str] = []
    for i, word in enumerate([*words, ""]):
        opens = i == 0 or raw[i - 1].endswith((".", "!", "?"))
        if word[:1].isupper() and not opens:
            if not run:
                placed = i > 0 and words[i - 1].lower() in _PLACE_PREPOSITIONS
            run.append(word)
        elif run:
            runs.append((" ".join(run), placed))
            run = []
    return runs


def _place(names: list[tuple[str, bool]]) -> str:
    placed = [name for name, is_place in names if is_place]
    return placed[-1] if placed else names[-1][0]


def _person(names: list[tuple[str, bool]]) -> str:
    people = [name for name, is_place in names if not is_place]
    return people[0] if people else names[0][0]


def instance(schema: Any, prompt: Prompt, name: str = "value") -> Any:
    """A value that validates against `schema` (the root is used to resolve $ref)."""
    return _Gen(schema, prompt).make(schema, name, 0, name)


class _Gen:
    def __init__(self, root: Any, prompt: Prompt) -> None:
        self.root = root
        self.prompt = prompt
        self.numbers_used = 0
        self.nodes = 0
        self.chars = 0

    def pick(self, path: str, count: int) -> int:
        return xxhash.xxh3_64_intdigest(path.encode(), seed=self.prompt.seed) % count if count > 1 else 0

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    def make(self, schema: Any, name: str, depth: int, path: str) -> Any:
        self.nodes += 1
        if depth > HARD_DEPTH or self.nodes > MAX_NODES:
            return None
        if schema is True or not isinstance(schema, dict):
            return f"demo {name}"
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            target = self.resolve(schema["$ref"])
            merged = {**target, **rest} if isinstance(target, dict) else rest
            return self.make(merged, name, depth + 1, path)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][self.pick(path, len(schema["enum"]))]
        if isinstance(schema.get("allOf"), list):
            return self.make(_merge(schema), name, depth, path)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.make(self.choose(options, depth), name, depth, path)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            kind = "null" if not kinds or depth > MAX_DEPTH else kinds[0]
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind not in _KINDS:
            return f"demo {name}"
        return getattr(self, f"_{kind}")(schema, name, depth, path)

    def choose(self, options: list[Any], depth: int) -> Any:
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        others = [o for o in options if o not in nulls]
        if depth > MAX_DEPTH and nulls:
            return nulls[0]
        return others[0] if others else options[0]

    def _null(self, schema: dict, name: str, depth: int, path: str) -> None:
        return None

    def _boolean(self, schema: dict, name: str, depth: int, path: str) -> bool:
        return self.pick(path, 2) == 0

    def _object(self, schema: dict, name: str, depth: int, path: str) -> dict[str, Any]:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if depth >= MAX_DEPTH and key not in required:
                continue
            out[key] = self.make(sub, key, depth + 1, f"{path}.{key}")
        for key in required:  # required but not described: anything goes
            if key not in out:
                out[key] = f"demo {key}"
        extra = schema.get("additionalProperties", True)
        want = schema.get("minProperties", 0)
        i = 0
        while isinstance(want, int) and len(out) < want and extra is not False and i < 1000:
            out.setdefault(f"extra_{i}", self.make(extra, f"extra_{i}", depth + 1, f"{path}.extra_{i}"))
            i += 1
        return out

    def _array(self, schema: dict, name: str, depth: int, path: str) -> list[Any]:
        low = schema.get("minItems", 0) if isinstance(schema.get("minItems"), int) else 0
        high = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        count = min(low if depth >= MAX_DEPTH else max(low, 2, len(prefix)), MAX_ITEMS)
        if high is not None:
            count = min(count, high)
        items = schema.get("items", {})
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else name
        out: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            value = self.make(sub, f"{singular} {i + 1}", depth + 1, f"{path}[{i}]")
            retry = 0
            while schema.get("uniqueItems") and value in out and retry < 16:
                retry += 1
                value = self.make(sub, f"{singular} {i + 1}", depth + 1, f"{path}[{i}]#{retry}")
            if schema.get("uniqueItems") and value in out:
                break
            out.append(value)
        return out

    def _integer(self, schema: dict, name: str, depth: int, path: str) -> int:
        return int(self._number(schema, name, depth, path, integer=True))

    def _number(self, schema: dict, name: str, depth: int, path: str, integer: bool = False) -> float:
        lo, hi = _bounds(schema, integer)
        step = schema.get("multipleOf")
        wanted = self.borrowed_number(lo, hi, step, integer)
        if wanted is None:
            wanted = self.fresh_number(lo, hi, path, integer or step is not None)
        value = min(max(wanted, lo), hi)
        if isinstance(step, int | float) and step > 0:
            value = _multiple(value, step, lo, hi)
        return int(value) if integer else float(value)

    def fresh_number(self, lo: float, hi: float, path: str, whole: bool) -> float:
        finite_lo, finite_hi = lo != float("-inf"), hi != float("inf")
        if finite_lo and finite_hi:
            value = lo + (hi - lo) * (1 + self.pick(path, 9)) / 10
            return float(round(value)) if whole and lo <= round(value) <= hi else value
        offset = float(1 + self.pick(path, 100)) + (0 if whole else 0.5)
        return lo + offset - 1 if finite_lo else hi - offset + 1 if finite_hi else offset

    def borrowed_number(self, lo: float, hi: float, step: Any, integer: bool) -> float | None:
        """The next number the user wrote, when it fits (an `age` from "John is 30")."""
        while self.numbers_used < len(self.prompt.numbers):
            value = self.prompt.numbers[self.numbers_used]
            self.numbers_used += 1
            if lo <= value <= hi and (not integer or value == int(value)) and step is None:
                return value
        return None

    def _string(self, schema: dict, name: str, depth: int, path: str) -> str:
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        if fmt == "uuid":
            h = xxhash.xxh3_128_hexdigest(path.encode(), seed=self.prompt.seed)
            text = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        elif fmt in _FORMATS:
            text = _FORMATS[fmt]
        elif isinstance(pattern, str) and (made := from_pattern(pattern)) is not None:
            text = made
        elif name.lower() in _QUERY_NAMES and self.prompt.text:
            text = self.prompt.text[:120]
        elif name.lower() in _PLACE_NAMES and self.prompt.names:
            text = _place(self.prompt.names)
        elif name.lower() in _NAME_NAMES and self.prompt.names:
            text = _person(self.prompt.names)
        elif fmt is None and (named := _named_format(name)) is not None:
            text = _FORMATS[named]
        else:
            text = f"demo {name}".replace("_", " ")
        room = max(0, min(MAX_STRING, MAX_CHARS - self.chars))
        low = min(schema["minLength"], room) if isinstance(schema.get("minLength"), int) else 0
        high = schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None
        if len(text) < low:
            text += "x" * (low - len(text))
        if high is not None and len(text) > high:
            text = text[:high]
        self.chars += len(text)
        return text


def _named_format(name: str) -> str | None:
    low = name.lower()
    return next((fmt for part, fmt in _NAMED_FORMATS if part in low), None)


def _multiple(value: float, step: float, lo: float, hi: float) -> float:
    """A multiple of `step` in [lo, hi] near `value`; a whole number when one fits (float steps like 0.01 leave
    rounding residue in n * step that strict validators reject, whole numbers do not)."""
    for whole in (round(value), round(value) + 1, round(value) - 1):
        if lo <= whole <= hi and (whole / step) == int(whole / step):
            return float(whole)
    n = -(-value // step)
    return n * step if n * step <= hi else (value // step) * step


def _bounds(schema: dict, integer: bool) -> tuple[float, float]:
    lo, hi = float("-inf"), float("inf")
    if isinstance(schema.get("minimum"), int | float):
        lo = schema["minimum"]
    if isinstance(schema.get("maximum"), int | float):
        hi = schema["maximum"]
    tiny = 1 if integer else 1e-6
    if isinstance(schema.get("exclusiveMinimum"), int | float) and not isinstance(
        schema["exclusiveMinimum"], bool
    ):
        lo = max(lo, schema["exclusiveMinimum"] + tiny)
    if isinstance(schema.get("exclusiveMaximum"), int | float) and not isinstance(
        schema["exclusiveMaximum"], bool
    ):
        hi = min(hi, schema["exclusiveMaximum"] - tiny)
    if integer:
        lo = float(-(-lo // 1)) if lo != float("-inf") else lo
        hi = float(hi // 1) if hi != float("inf") else hi
    return lo, hi


def _merge(schema: dict) -> dict:
    """allOf folded into one schema: properties and required united, other keys from the last part."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        props = {**merged.get("properties", {}), **part.get("properties", {})}
        required = list(dict.fromkeys([*merged.get("required", []), *part.get("required", [])]))
        merged.update(part)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
    return merged


def from_pattern(pattern: str) -> str | None:
    """A short string matching a regular expression (simple ones: literals, classes, repeats, groups)."""
    try:
        parsed = sre_parse.parse(pattern)
        text = _emit(parsed)
        return text if re.search(pattern, text) else None
    except (re.error, RecursionError, ValueError, TypeError, OverflowError):
        return None


_CATEGORY = {
    sre_c.CATEGORY_DIGIT: "0",
    sre_c.CATEGORY_NOT_DIGIT: "a",
    sre_c.CATEGORY_WORD: "a",
    sre_c.CATEGORY_NOT_WORD: "-",
    sre_c.CATEGORY_SPACE: " ",
    sre_c.CATEGORY_NOT_SPACE: "a",
}


def _emit(parsed: Any) -> str:
    out = []
    for op, arg in parsed:
        if op is sre_c.LITERAL:
            out.append(chr(arg))
        elif op is sre_c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is sre_c.ANY:
            out.append("a")
        elif op is sre_c.IN:
            out.append(_one_of(arg))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = arg
            out.append(_emit(sub) * (low if low > 0 else min(1, high)))
            if sum(map(len, out)) > MAX_STRING:
                raise ValueError("pattern needs too long a string")
        elif op is sre_c.SUBPATTERN:
            out.append(_emit(arg[-1]))
        elif op is sre_c.BRANCH:
            out.append(_emit(arg[1][0]))
        elif op is sre_c.AT:
            continue
        else:
            raise ValueError(f"unsupported pattern part {op}")
    return "".join(out)


def _one_of(items: list[Any]) -> str:
    negate = any(op is sre_c.NEGATE for op, _ in items)
    if not negate:
        for op, arg in items:
            if op is sre_c.LITERAL:
                return chr(arg)
            if op is sre_c.RANGE:
                return chr(arg[0])
            if op is sre_c.CATEGORY:
                return _CATEGORY.get(arg, "a")
        return "a"
    for candidate in "aZ0_- x.#":
        if not any(_member(candidate, op, arg) for op, arg in items):
            return candidate
    raise ValueError("no character fits")


def _member(char: str, op: Any, arg: Any) -> bool:
    if op is sre_c.LITERAL:
        return ord(char) == arg
    if op is sre_c.RANGE:
        return arg[0] <= ord(char) <= arg[1]
    if op is sre_c.CATEGORY:
        return bool(_CATEGORY_RE[arg].match(char)) if arg in _CATEGORY_RE else True
    return False


_CATEGORY_RE = {
    sre_c.CATEGORY_DIGIT: re.compile(r"\d"),
    sre_c.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    sre_c.CATEGORY_WORD: re.compile(r"\w"),
    sre_c.CATEGORY_NOT_WORD: re.compile(r"\W"),
    sre_c.CATEGORY_SPACE: re.compile(r"\s"),
    sre_c.CATEGORY_NOT_SPACE: re.compile(r"\S"),
}
