"""vNLP rules on hand-written lines: domain terms pass through, slips are fixed."""

from __future__ import annotations

from collections import Counter

import pytest

# A tiny "corpus": configuration and file system are common, kubectl recurs (a domain term learnt from the corpus).
from tests.helpers import from_params
from vbert.text.spelling import CorpusCounts, SpellConfig, SpellFixer, count_candidate_words, edits_inside, token_shape

CORPUS = [
    "Edit the configuration file and check the file system.",
    "The configuration of the file system is checked at boot.",
    "Run kubectl to apply the configuration.",
    "Use kubectl get pods to list the pods, then check the configuration.",
    "A file system check repairs the configuration of the system.",
    "The configuration is read by dict.setdefault() in the code.",
]
CONFIG = from_params(SpellConfig, "vnlp", min_target_count=2, pair_min_count=3)


@pytest.fixture(scope="module")
def fixer() -> SpellFixer:
    return SpellFixer(count_candidate_words(CORPUS * 3), lexicon={"vmotion"}, config=CONFIG)


def fix(fixer: SpellFixer, line: str) -> str:
    return fixer.fix_line(line, Counter(), Counter())


def test_issue_examples(fixer):
    line = "Install kubectl on vSphere with PyObject_New, /etc/fstab and v2.3.1 after the configuraiton."
    assert (
        fix(fixer, line)
        == "Install kubectl on vSphere with PyObject_New, /etc/fstab and v2.3.1 after the configuration."
    )
    assert fix(fixer, "Run the filesystemcheck now.") == "Run the file system check now."


@pytest.mark.parametrize(
    "term",
    [
        "vSphere",
        "kubectl",
        "PyObject_New",
        "/etc/fstab",
        "v2.3.1",
        "--dry-run",
        "NULL",
        "http://example.org/a_b",
        "eth0",
        "C++",
        "x86_64",
        "vmotion",
        "setdefault",
    ],
)
def test_domain_terms_pass_through(fixer, term):
    assert fix(fixer, f"See {term} here.") == f"See {term} here."


def test_capitalised_words_inside_a_sentence_are_names(fixer):
    assert fix(fixer, "Ask Geoff about the Configuraiton.") == "Ask Geoff about the Configuraiton."
    stats = Counter()
    fixer.fix_line("Ask Geoff now", stats, Counter())
    assert stats["protected_name"] == 1


def test_capitalisation_is_kept(fixer):
    assert fix(fixer, "Configuraiton matters.") == "Configuration matters."
    assert fix(fixer, "Filesystemcheck done.") == "File system check done."


def test_code_lines_are_left_alone(fixer):
    line = "if (x == 1) { configuraiton(); }"
    assert fix(fixer, line) == line


def test_edits_at_the_edges_are_not_typos(fixer):
    assert not edits_inside("aconfiguration", "configuration")
    assert not edits_inside("configurations", "configuration")
    assert edits_inside("configuraiton", "configuration")
    assert fix(fixer, "the reconfiguration") == "the reconfiguration"


def test_words_the_corpus_repeats_are_terms(fixer):
    counts = count_candidate_words([*CORPUS, "The configuraiton word twice: configuraiton."])
    assert fix(SpellFixer(counts, set(), CONFIG), "a configuraiton") == "a configuraiton"


def test_short_and_inflected_words_are_left_alone(fixer):
    assert fix(fixer, "the cnfig") == "the cnfig"  # shorter than min_word_length
    assert fixer.decide("kubectls").kind == "unknown"  # an inflection of a corpus word


def test_decisions_are_counted(fixer):
    stats, changes = Counter(), Counter()
    fixer.fix_line("The configuraiton of vSphere at /etc/fstab with kubectl and a filesystemcheck", stats, changes)
    assert changes == {
        ("correct", "configuraiton", "configuration"): 1,
        ("split", "filesystemcheck", "file system check"): 1,
    }
    assert stats["protected_case"] == 1 and stats["protected_pattern"] == 1 and stats["protected_corpus"] == 1
    assert stats["words"] == 11


def test_token_shape():
    assert token_shape("(Hello),") == ("(", "Hello", "),", "word")
    assert token_shape("vSphere")[3] == "case"
    assert token_shape("ABC")[3] == "case"
    assert token_shape("v2.3.1")[3] == "pattern"
    assert token_shape("...")[3] == "pattern"


def test_code_terms_are_collected():
    counts = count_candidate_words(["call dict.setdefault or os_path_join now", "x = getattr(obj, name)"])
    assert isinstance(counts, CorpusCounts)
    assert {"setdefault", "dict", "path", "join", "getattr", "name"} <= counts.code_terms  # identifiers, code lines
    assert counts.words == {"call": 1, "or": 1, "now": 1}
