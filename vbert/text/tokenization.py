"""BERT tokenisation, identical to Google's BasicTokenizer + WordpieceTokenizer.

`GoogleTokenizer` is a line-for-line port of google-research/bert's tokenization.py (the reference).
`FullTokenizer` gives the same tokens several times faster: ASCII lines (most of a technical corpus) by a regular
expression and a per-word cache of word pieces, other lines by the Rust `tokenizers` library, and the few
characters where that library and Python's Unicode tables disagree by the reference. One tokenizer everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from vbert.core.atomic import write_json, write_text
from vbert.core.errors import InputError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"  # Hugging Face's name; `do_lower_case` is the fact every stage reads
GOOGLE_MAX_INPUT_CHARS_PER_WORD = 200  # google-research/bert tokenization.py, WordpieceTokenizer


class Vocab:
    """A WordPiece vocabulary: token <-> id, in file order."""

    def __init__(self, tokens: Sequence[str], source: str = "<memory>"):
        self.tokens = list(tokens)
        self.source = source
        self.ids: dict[str, int] = {}
        for index, token in enumerate(self.tokens):
            if token in self.ids:
                raise InputError(
                    f"{source}:{index + 1}: token {token!r} appears twice (first on line {self.ids[token] + 1})"
                )
            self.ids[token] = index
        missing = [t for t in SPECIAL_TOKENS if t not in self.ids]
        if missing:
            raise InputError(f"{source}: vocabulary lacks the special token(s) {', '.join(missing)}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.ids

    @property
    def unk_id(self) -> int:
        return self.ids["[UNK]"]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.ids[t] for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, "".join(t + "\n" for t in self.tokens))


def load_vocab(path: str | os.PathLike) -> Vocab:
    """Read a vocab.txt (one token per line, id = line number - 1)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such vocabulary file")
    with open(path, encoding="utf-8") as handle:
        tokens = [line.rstrip("\n").rstrip("\r") for line in handle]
    empty = [i + 1 for i, t in enumerate(tokens) if not t.strip()]
    if empty:
        raise InputError(f"{path}:{empty[0]}: empty token")
    return Vocab(tokens, source=str(path))


# ----------------------------------------------------------------------------------------------------------
# The reference: google-research/bert's BasicTokenizer and WordpieceTokenizer, ported to Python 3.


def _is_whitespace(char: str) -> bool:
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _split_on_punctuation(token: str) -> list[str]:
    """Google's _run_split_on_punc: each punctuation mark alone, the runs between them kept (linear time: the runs
    are joined once, not grown a character at a time)."""
    pieces: list[str] = []
    run: list[str] = []
    for char in token:
        if _is_punctuation(char):
            if run:
                pieces.append("".join(run))
                run = []
            pieces.append(char)
        else:
            run.append(char)
    if run:
        pieces.append("".join(run))
    return pieces


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def basic_tokenize(text: str, do_lower_case: bool) -> list[str]:
    """Google's BasicTokenizer.tokenize: clean, space CJK, split on whitespace and punctuation, lower-case."""
    cleaned = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            continue
        if _is_chinese_char(cp):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(" " if _is_whitespace(char) else char)
    split_tokens: list[str] = []
    for token in "".join(cleaned).split():
        if do_lower_case:
            token = _strip_accents(token.lower())
        split_tokens.extend(_split_on_punctuation(token))
    return " ".join(split_tokens).split()


def wordpiece_tokenize(
    word: str,
    vocab: Vocab | set[str] | dict[str, int],
    unk_token: str = "[UNK]",
    max_input_chars_per_word: int = GOOGLE_MAX_INPUT_CHARS_PER_WORD,
) -> list[str]:
    """Google's WordpieceTokenizer on one basic token: greedy longest match first, `##` continuations."""
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        end = len(word)
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class GoogleTokenizer:
    """The reference implementation, for tests and for the few lines `FullTokenizer` hands back to it."""

    def __init__(
        self,
        vocab: Vocab,
        *,
        do_lower_case: bool,
        max_input_chars_per_word: int = GOOGLE_MAX_INPUT_CHARS_PER_WORD,
    ):
        self.vocab = vocab
        self.do_lower_case = do_lower_case
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str) -> list[str]:
        return [
            piece
            for token in basic_tokenize(text, self.do_lower_case)
            for piece in wordpiece_tokenize(token, self.vocab, "[UNK]", self.max_input_chars_per_word)
        ]

    def encode(self, text: str) -> list[int]:
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))


# ----------------------------------------------------------------------------------------------------------
# The fast path.

# Rust `tokenizers` and Python's `unicodedata` follow different Unicode versions, and tokenizers treats a few
# characters differently (U+2028/U+2029 are whitespace to it; it deletes unassigned and private-use code points).
# Lines made only of the blocks below (ASCII, Latin, combining accents, Greek, Cyrillic, general punctuation,
# currency, letterlike, arrows, maths, box drawing, CJK punctuation and ideographs, full-width forms) give
# identical tokens in both, as tests/test_tokenization.py checks; any other line goes to the reference.
_OUTSIDE_AGREED_BLOCKS = re.compile(
    "[^\x00-\u024f\u0300-\u036f\u0370-\u03ff\u0400-\u04ff\u2000-\u2027\u202a-\u206f"
    "\u20a0-\u20bf\u2100-\u214f\u2190-\u21ff\u2200-\u22ff\u2500-\u257f\u3000-\u303f"
    "\u4e00-\u9fff\uff01-\uffee]"
)


# ASCII control characters are deleted (tab, newline and carriage return become spaces); what is left is letters,
# digits, spaces and punctuation (Google counts every other printable ASCII character as punctuation).
_ASCII_CLEAN = str.maketrans(
    {**{c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}, 9: " ", 10: " ", 13: " "}
)
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


_WORD_RUN = re.compile(r"[^ \t\n\r]+")  # no leading white space in the pattern: linear, however long a space run
CHARS_PER_PIECE_BUDGET = 32  # with max_pieces, a text is cut to max_pieces x this many characters first


def _first_words(text: str, count: int) -> str:
    """`text` up to the end of its `count`-th run of characters other than ASCII white space."""
    end = 0
    for index, match in enumerate(_WORD_RUN.finditer(text)):
        if index == count:
            return text[:end]
        end = match.end()
    return text


def _needs_reference(text: str) -> bool:
    return _OUTSIDE_AGREED_BLOCKS.search(text) is not None


class FullTokenizer:
    """Google-identical BERT tokenisation: ASCII lines in cached Python, others in Rust `tokenizers`."""

    def __init__(
        self,
        vocab: Vocab,
        *,
        do_lower_case: bool,
        max_input_chars_per_word: int = GOOGLE_MAX_INPUT_CHARS_PER_WORD,
    ):
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

        self.vocab = vocab
        self.reference = GoogleTokenizer(
            vocab, do_lower_case=do_lower_case, max_input_chars_per_word=max_input_chars_per_word
        )
        self.do_lower_case = do_lower_case
        self._max_chars = max_input_chars_per_word
        self._word_pieces: dict[str, list[int]] = {}
        self._fast = Tokenizer(
            models.WordPiece(
                vocab=dict(vocab.ids), unk_token="[UNK]", max_input_chars_per_word=max_input_chars_per_word
            )
        )
        self._fast.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=do_lower_case, lowercase=do_lower_case
        )
        self._fast.pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    def encode_batch(self, texts: Sequence[str], max_pieces: int | None = None) -> list[list[int]]:
        """Token ids of each text (no [CLS]/[SEP]); with `max_pieces`, at least the first `max_pieces` of them
        (exactly those of the whole text) without tokenising all of a long text: a text is first cut to
        `max_pieces * CHARS_PER_PIECE_BUDGET` characters (BERT text averages 4 to 6 a piece, code with deep
        indentation rarely 20), so the work per text is bounded whatever a client sends (a megabyte of spaces, one
        endless word, a million combining marks)."""
        if max_pieces is not None:  # short texts all at once; long ones (10+ characters a piece) by prefixes
            budget = max_pieces * CHARS_PER_PIECE_BUDGET
            texts = [text[:budget] for text in texts]
            long = {i for i, text in enumerate(texts) if len(text) > 10 * max_pieces}
            short = iter(self.encode_batch([t for i, t in enumerate(texts) if i not in long]))
            return [self._first_pieces(t, max_pieces) if i in long else next(short) for i, t in enumerate(texts)]
        ids: list[list[int]] = [[] for _ in texts]
        unicode: list[int] = []
        for index, text in enumerate(texts):
            if text.isascii():
                ids[index] = self._encode_ascii(text)
            elif _needs_reference(text):
                ids[index] = self.reference.encode(text)
            else:
                unicode.append(index)
        encodings = self._fast.encode_batch_fast([texts[i] for i in unicode], add_special_tokens=False)
        for index, encoding in zip(unicode, encodings, strict=True):
            ids[index] = encoding.ids
        return ids

    def _encode_ascii(self, text: str) -> list[int]:
        """ASCII text: Google's rules reduce to dropping control characters, lower-casing, and splitting into runs
        of letters and digits and single punctuation marks; word pieces are cached per word (Zipf's law)."""
        text = text.translate(_ASCII_CLEAN)
        if self.do_lower_case:
            text = text.lower()
        ids: list[int] = []
        cache = self._word_pieces
        for word in _ASCII_WORD.findall(text):
            pieces = cache.get(word)
            if pieces is None:
                if len(cache) > 1_000_000:
                    cache.clear()
                tokens = wordpiece_tokenize(word, self.vocab, "[UNK]", self._max_chars)
                pieces = cache[word] = self.vocab.convert_tokens_to_ids(tokens)
            ids += pieces
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def _first_pieces(self, text: str, count: int) -> list[int]:
        """The pieces of a prefix of `text` cut at ASCII white space, grown until it has `count` pieces or is the
        whole text: no token spans ASCII white space, so they are the first pieces of the whole text."""
        words = count
        while True:
            prefix = _first_words(text, words)
            pieces = self.encode(prefix)
            if len(pieces) >= count or len(prefix) == len(text):
                return pieces
            words *= 2

    def tokenize(self, text: str) -> list[str]:
        return self.vocab.convert_ids_to_tokens(self.encode(text))

    def basic_tokens(self, text: str) -> list[str]:
        """Google's BasicTokenizer output (the words that WordPiece then splits)."""
        if _needs_reference(text):
            return basic_tokenize(text, self.reference.do_lower_case)
        normalized = self._fast.normalizer.normalize_str(text)
        return [word for word, _ in self._fast.pre_tokenizer.pre_tokenize_str(normalized)]


# ----------------------------------------------------------------------------------------------------------
# A tokenizer on disk: vocab.txt + tokenizer_config.json, written by the vocab stage and carried unchanged by every
# later artifact (pretraining checkpoints, the fine-tuned model, the SavedModel's and IR's assets).


def save_tokenizer(folder: str | os.PathLike, vocab: Vocab, do_lower_case: bool) -> None:
    """Write `vocab.txt` and `tokenizer_config.json` (Google's rule: lower-case and strip accents, or neither)."""
    folder = Path(folder)
    vocab.save(folder / VOCAB_FILE)
    write_json(
        folder / TOKENIZER_CONFIG,
        {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case, "strip_accents": None},
    )


def tokenizer_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """The two files of a tokenizer folder, checked to exist."""
    folder = Path(folder)
    files = folder / VOCAB_FILE, folder / TOKENIZER_CONFIG
    for path in files:
        if not path.exists():
            raise InputError(f"{path}: missing; a tokenizer folder holds {VOCAB_FILE} and {TOKENIZER_CONFIG}")
    return files


def read_do_lower_case(folder: str | os.PathLike) -> bool:
    """The casing recorded with a vocabulary."""
    path = tokenizer_files(folder)[1]
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("do_lower_case")
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from err
    if not isinstance(value, bool):
        raise InputError(f"{path}: do_lower_case must be true or false, got {value!r}")
    return value


def copy_tokenizer(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a tokenizer folder's two files into `target` (an artifact carries its tokenizer with it)."""
    for path in tokenizer_files(source):
        shutil.copy(path, Path(target) / path.name)


def load_tokenizer(folder: str | os.PathLike) -> FullTokenizer:
    """The tokenizer saved in `folder` (its vocabulary and casing)."""
    vocab_path, _ = tokenizer_files(folder)
    return FullTokenizer(load_vocab(vocab_path), do_lower_case=read_do_lower_case(folder))
