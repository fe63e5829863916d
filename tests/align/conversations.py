"""Conversations and a corpus for the alignment tests (a helper module, imported by name: not a
conftest, so that it cannot clash with another folder's): adversarial conversations (unicode,
whitespace runs, tabs/newlines, Python code, copies of a message inside the prompt, template words
inside contents) and a synthetic corpus to train small tokenizers on."""

from __future__ import annotations

import random

WORDS = [
    "apple",
    "river",
    "castle",
    "engine",
    "garden",
    "lantern",
    "mountain",
    "violin",
    "enormous",
    "golden",
    "quiet",
    "return",
    "answer",
    "number",
    "between",
    "remember",
    "festival",
    "library",
]
UNICODE = [
    "café",
    "naïve",
    "façade",
    "über",
    "Ωμέγα",
    "世界",
    "你好",
    "東京",
    "😀",
    "🎉",
    "½",
    "∑",
    "x²",
    "—",
    "…",
    "São",
    "Zürich",
    "ß",
]


def _sentence(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + "."
    if kind == 1:
        a, b = rng.randrange(10**6), rng.randrange(1000)
        return f"What is {a} + {b}? The answer is {a + b}, not {rng.random():.5f}."
    if kind == 2:
        fn = rng.choice(["total", "scale", "count_items"])
        return (
            f'def {fn}(xs, n={rng.randrange(10)}):\n    """Return the kept items."""\n'
            f"    return [x * n for x in xs if x > {rng.randrange(999)}]\n"
        )
    if kind == 3:
        return " ".join(rng.choice(UNICODE + WORDS) for _ in range(rng.randint(3, 8)))
    return f"Q:\t{rng.choice(WORDS)}  {rng.choice(WORDS)}\n\nA:   {rng.choice(['Yes', 'No'])}\n"


def synthetic_corpus(n: int = 1200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(_sentence(rng) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def conv(*turns: str, system: str | None = None) -> list[dict]:
    """user, assistant, user, assistant, ... (optionally after a system message)."""
    roles = ["user", "assistant"]
    msgs = [{"role": "system", "content": system}] if system is not None else []
    return msgs + [{"role": roles[k % 2], "content": t} for k, t in enumerate(turns)]


ADVERSARIAL = [
    conv("Café naïve — 😀🎉 世界你好 Ωμέγα?", "Ça va: 世界 😀 ok ½ ∑ x² in Zürich…"),
    conv("a  b   c\t\td\n\n\ne    f", "   leading spaces\n\n\ttab then  two  spaces   "),
    conv(
        "Write the function.",
        'def total(xs, n=3):\n    """Sum."""\n    return sum(x * n for x in xs if x > 12345)\n',
    ),
    conv(
        "Say: The golden violin is quiet.", "The golden violin is quiet.", system="Repeat after me."
    ),
    conv("The golden violin is quiet.", "The golden violin is quiet."),
    conv("What is 17 + 25?", "\n\nAnswer: 42\n"),
    conv(
        "hi", "", "again 123456789 and 3.14159", "Numbers 1000000 and 2.71828 between 999 and 1000."
    ),
    conv("user", "assistant"),
    conv("system\nHUMAN", "<role>ASSISTANT</role> and <|im_start|>user\n are template words"),
    conv("  \t", "only the answer   remains\r\nwith CRLF\r\n"),
    conv(
        "Translate 東京 to English.",
        "東京 is Tokyo. 東京!",
        system="  You are a helpful assistant.  ",
    ),
    conv("Q:\tenormous  castle\n\nA:", "   Yes\n", "And the library?", "No.\n\n\n"),
    conv("\nStarts with a newline (merged with the header's).", "\n\n\nThree newlines first."),
]
