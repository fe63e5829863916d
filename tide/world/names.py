"""Names: a fixed list of person names; seeded made-up names of lands, cities, rivers, languages.

Made-up names are built from consonant-vowel syllables, with endings that differ by kind (lands end
in a vowel or a soft consonant, cities in a consonant cluster, rivers in ``-a``/``-e``), so that a
tiny tokenizer and model can tell the kinds apart. Every name is unique across kinds.
"""

from __future__ import annotations

import random

PERSON_NAMES = (
    "Anna", "Ben", "Cara", "Dan", "Eva", "Finn", "Gina", "Hugo", "Ida", "Jack",
    "Kira", "Leo", "Mia", "Ned", "Olga", "Paul", "Rita", "Sam", "Tara", "Uma",
    "Vic", "Wade", "Xena", "Yuri", "Zoe", "Adam", "Bella", "Carl", "Dora", "Eli",
    "Fay", "Gus", "Hana", "Ivan", "Jill", "Kurt", "Lena", "Max", "Nina", "Omar",
    "Pia", "Ray", "Sara", "Tom", "Ugo", "Vera", "Will", "Yara", "Zack", "Alma",
    "Boris", "Cleo", "Dean", "Emma", "Fred", "Greta", "Hank", "Iris", "Joel", "Kate",
    "Lars", "Mona", "Nils", "Otto", "Petra", "Rosa", "Seth", "Tina", "Umar", "Vito",
    "Wren", "Yves", "Zara", "Abel", "Beth", "Cole", "Dina", "Egon", "Flora", "Gil",
    "Hedy", "Igor", "Jade", "Karl", "Lola", "Milo", "Nora", "Owen", "Pam", "Rex",
    "Sue", "Theo", "Una", "Val", "Wanda", "Axel", "Bea", "Cyril", "Dex", "Ezra",
)
MAX_LANDS = 120
N_LANGUAGES = 10

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_ENDINGS = {
    "land": ("", "", "n", "r", "l"),
    "city": ("sk", "nd", "th", "lt", "rn"),
    "river": ("a", "e"),
    "language": ("ish", "ic", "ese", "an"),
}


def _made_up(rng: random.Random, kind: str) -> str:
    stem = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(2))
    if kind == "language" or kind == "river":
        stem = stem[:-1]  # drop the last vowel before a vowel-initial ending
    return (stem + rng.choice(_ENDINGS[kind])).capitalize()


def made_up_names(rng: random.Random, counts: dict[str, int]) -> dict[str, list[str]]:
    """``counts[kind]`` unique names per kind (``land``, ``city``, ``river``, ``language``)."""
    taken = {n.lower() for n in PERSON_NAMES}
    out: dict[str, list[str]] = {}
    for kind in ("land", "city", "river", "language"):
        names: list[str] = []
        while len(names) < counts.get(kind, 0):
            name = _made_up(rng, kind)
            if name.lower() not in taken and len(name) >= 3:
                taken.add(name.lower())
                names.append(name)
        out[kind] = names
    return out
