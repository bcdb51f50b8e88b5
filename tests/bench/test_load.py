"""The load runner's bookkeeping: busy answers apart from errors, max-size texts of the stated length."""

from vbert.bench.load import max_size_texts, run_load
from vbert.serving.client import ServerError


def test_a_503_with_retry_after_is_busy_not_an_error():
    def send(texts):
        if texts == ["busy"]:
            raise ServerError(503, "queue full", retry_after="1")
        if texts == ["bare"]:
            raise ServerError(503, "queue full")  # no Retry-After: a client cannot know when to come back

    result = run_load(send, ["ok", "busy", "bare"], clients=1, seconds=0.2)
    assert result.busy >= 1 and result.errors >= 1
    assert result.first_error == "ServerError: HTTP 503: queue full"
    assert result.busy + result.errors + result.requests >= 3


def test_max_size_texts_join_consecutive_texts_to_the_length():
    texts = max_size_texts(["abc", "de", "f"], count=2, chars=6)
    assert texts == ["abc de", "f abc"]  # "abc de"; then on from "f", wrapping round to "abc"
    assert all(len(t) == 14_500 for t in max_size_texts(["word " * 50], count=3))
