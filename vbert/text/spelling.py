"""vNLP: spelling correction and compound splitting that leaves domain language alone.

Technical text is full of words no English dictionary knows (namedtuple, localhost, kubectl), and nearly all of
them are right. So a word is changed only when everything says it is a slip:

* its shape is a plain word (ASCII letters, lower-case, or capitalised at the start of a line): identifiers,
  paths, versions, options, mixed-case names, capitalised words inside a sentence (names) and code-like lines are
  protected by shape;
* it is unknown to the English dictionary shipped with symspellpy and to the user's lexicon, is never seen inside
  code or an identifier anywhere in the corpus (setdefault, insort, scrypt), and the corpus uses
  it at most `max_typo_count` times (a term that recurs is a term, not a typo), and it is not an inflection
  (plural, past tense, -er, -ing, ...) of a known word;
* a correction is one edit (Damerau-Levenshtein) inside the word, never at its first or last letter (those are
  prefixes and suffixes, not typos), towards a word the corpus itself uses at least `min_target_count` times;
* a split cuts a long word (`min_split_length`) into known words of 3+ letters whose neighbours are attested
  together: as an English bigram (symspellpy's list), or as two words the corpus uses often.

Everything changed is counted in an audit file, most frequent first, for a person to check.
"""

from __future__ import annotations

import importlib.resources
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from symspellpy import SymSpell, Verbosity

from vbert.core import params as knob

# A whitespace token = leading punctuation, a core, trailing punctuation.
_TOKEN = re.compile(r"\S+")
_LEADING, _TRAILING = "\"'([{<`*", "\"')]}>`*.,;:!?"  # stripped with str methods: linear in the token
_WORD = re.compile(r"[A-Za-z]+")
# Lines that read as code: braces, statement ends, operators, calls, shell prompts, SQL/Perl sigils.
_CODE_LINE = re.compile(r"[{};]\s*$|[{}]|==|!=|->|=>|::|\(\)|^\s*[$#>] |\$\w|@\w+\s*=|\b\w+\s*=\s*\S")


def _edges(token: str) -> tuple[str, str, str]:
    """Leading punctuation, the core, trailing punctuation (the core as short as the trailing marks allow)."""
    rest = token.lstrip(_LEADING)
    core = rest.rstrip(_TRAILING)
    return token[: len(token) - len(rest)], core, rest[len(core) :]


class Decision(NamedTuple):
    kind: str  # known | lexicon (incl. code terms) | corpus | correct | split | unknown
    replacement: str | None = None


_INFLECTIONS = ("s", "es", "ed", "d", "ing", "er", "ers", "r", "ly", "al", "able")


@dataclass(frozen=True)
class SpellConfig:
    """Knobs of the corrector (params.yaml `vnlp`)."""

    max_edit_distance: int = knob.integer("corrections are this many edits inside a word at most", min=1, max=3)
    min_word_length: int = knob.integer("unknown words shorter than this are left alone", min=1)
    max_typo_count: int = knob.integer("an unknown word the corpus uses more often than this is a domain term", min=0)
    min_target_count: int = knob.integer("a correction must be a word the corpus uses this often", min=1)
    min_split_length: int = knob.integer("shortest word tried as a run-together compound", min=2)
    pair_min_count: int = knob.integer("split parts must be an English bigram or both this frequent", min=1)


def english_dictionary_path() -> str:
    return str(importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt")


def english_bigrams() -> set[tuple[str, str]]:
    path = importlib.resources.files("symspellpy") / "frequency_bigramdictionary_en_243_342.txt"
    with open(str(path), encoding="utf-8") as handle:
        return {tuple(line.split()[:2]) for line in handle}


def edits_inside(word: str, target: str) -> bool:
    """True when `word` and `target` share their first and their last letter (the edit is inside)."""
    return bool(word) and bool(target) and word[0] == target[0] and word[-1] == target[-1]


def token_shape(token: str) -> tuple[str, str, str, str]:
    """Split a whitespace token into (lead, core, trail) and classify the core.

    The class is `word` (ASCII letters, lower-case or capitalised), `case` (mixed or upper case: vSphere, NULL),
    or `pattern` (anything with digits, `_ . / - :` or other symbols: paths, versions, identifiers, options).
    """
    lead, core, trail = _edges(token)
    if not core:
        return lead, core, trail, "pattern"
    if not _WORD.fullmatch(core):
        return lead, core, trail, "pattern"
    if core.islower() or (core[0].isupper() and core[1:].islower()):
        return lead, core, trail, "word"
    return lead, core, trail, "case"


class CorpusCounts(NamedTuple):
    """Pass-1 statistics: counts of plain words, and the letter runs seen inside code and identifiers."""

    words: Counter
    code_terms: set[str]

    def merge(self, other: CorpusCounts) -> None:
        self.words.update(other.words)
        self.code_terms.update(other.code_terms)


def count_candidate_words(lines: list[str]) -> CorpusCounts:
    """Corpus counts of candidate words (lower-cased); words inside code lines and identifiers go to code_terms."""
    counts = CorpusCounts(Counter(), set())
    for line in lines:
        code_line = _CODE_LINE.search(line) is not None
        for token in line.split():
            _, core, _, shape = token_shape(token)
            if shape == "word" and not code_line:
                counts.words[core.lower()] += 1
            else:
                counts.code_terms.update(run.lower() for run in _WORD.findall(token) if len(run) > 3)
    return counts


class SpellFixer:
    """Corrects one line at a time; decisions are cached per word (word frequencies are Zipfian)."""

    def __init__(self, counts: CorpusCounts, lexicon: set[str], config: SpellConfig):
        self.config = config
        self.lexicon = {w.lower() for w in lexicon} | counts.code_terms
        self.corpus_counts = counts.words
        self.symspell = SymSpell(max_dictionary_edit_distance=config.max_edit_distance, prefix_length=7)
        self.symspell.load_dictionary(english_dictionary_path(), term_index=0, count_index=1)
        self.english = set(self.symspell.words)
        self.bigrams = english_bigrams()
        for (
            word,
            count,
        ) in self.corpus_counts.items():  # frequent corpus words become correction and split targets
            if count >= config.min_target_count and word not in self.english:
                self.symspell.create_dictionary_entry(word, count)
        self._cache: dict[str, Decision] = {}

    def decide(self, word: str) -> Decision:
        """What to do with a lower-case word."""
        decision = self._cache.get(word)
        if decision is None:
            decision = self._cache[word] = self._decide(word)
        return decision

    def _count(self, word: str) -> int:
        return self.corpus_counts.get(word, 0)

    def _known(self, word: str) -> bool:
        return word in self.english or word in self.lexicon or self._count(word) > self.config.max_typo_count

    def _is_inflection(self, word: str) -> bool:
        return any(
            word.endswith(suffix) and (self._known(stem := word[: -len(suffix)]) or self._count(stem) > 0)
            for suffix in _INFLECTIONS
            if len(word) > len(suffix) + 2
        )

    def _attested(self, left: str, right: str) -> bool:
        threshold = self.config.pair_min_count
        return (left, right) in self.bigrams or (self._count(left) >= threshold and self._count(right) >= threshold)

    def _decide(self, word: str) -> Decision:
        config = self.config
        if word in self.english:
            return Decision("known")
        if word in self.lexicon:
            return Decision("lexicon")
        if self._count(word) > config.max_typo_count:
            return Decision("corpus")
        if len(word) < config.min_word_length or self._is_inflection(word):
            return Decision("unknown")
        suggestions = [
            s
            for s in self.symspell.lookup(word, Verbosity.CLOSEST, max_edit_distance=config.max_edit_distance)
            if s.term != word and self._count(s.term) >= config.min_target_count and edits_inside(word, s.term)
        ]
        if suggestions:
            best = min(suggestions, key=lambda s: (s.distance, -self._count(s.term), -s.count))
            return Decision("correct", best.term)
        if len(word) >= config.min_split_length:
            parts = self.symspell.word_segmentation(word, max_edit_distance=0).corrected_string.split()
            if (
                len(parts) >= 2
                and "".join(parts) == word
                and all(len(p) >= 3 and self._known(p) for p in parts)
                and all(self._attested(a, b) for a, b in itertools.pairwise(parts))
            ):
                return Decision("split", " ".join(parts))
        return Decision("unknown")

    def fix_line(self, line: str, stats: Counter, changes: Counter) -> str:
        """The corrected line; `stats` counts decisions by kind, `changes` counts (kind, old, new)."""
        if _CODE_LINE.search(line):
            stats["protected_code"] += len(line.split())
            stats["words"] += len(line.split())
            return line
        out: list[str] = []
        last = 0
        for match in _TOKEN.finditer(line):
            token = match.group()
            stats["words"] += 1
            lead, core, trail, shape = token_shape(token)
            if shape == "word" and core[0].isupper() and match.start() > 0:
                shape = "name"  # capitalised inside a sentence: a name (Geoff, Numba), not a slip
            if shape != "word":
                stats[f"protected_{shape}"] += 1
                continue
            decision = self.decide(core.lower())
            if decision.kind in ("lexicon", "corpus"):
                stats[f"protected_{decision.kind}"] += 1
            else:
                stats[decision.kind] += 1
            if decision.replacement is None:
                continue
            replacement = decision.replacement
            if core[0].isupper():
                replacement = replacement[0].upper() + replacement[1:]
            changes[(decision.kind, core, replacement)] += 1
            out.append(line[last : match.start()])
            out.append(lead + replacement + trail)
            last = match.end()
        if not out:
            return line
        out.append(line[last:])
        return "".join(out)
