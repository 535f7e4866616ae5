"""Rolling batches and the fail threshold."""

import pytest

from agent.errors import InputError
from agent.runner.batches import batches, parse_batch_size, threshold_exceeded


@pytest.mark.parametrize(
    "text,total,size", [(None, 7, 7), ("3", 7, 3), ("25%", 10, 3), ("100%", 4, 4), ("1%", 10, 1), (None, 0, 1)]
)
def test_batch_size_is_a_count_or_a_share_rounded_up(text, total, size):
    assert parse_batch_size(text, total) == size


@pytest.mark.parametrize("text", ["0", "-2", "abc", "0%", "150%", "5.5"])
def test_bad_batch_size_is_input_error(text):
    with pytest.raises(InputError, match="--batch-size: .* is neither a host count"):
        parse_batch_size(text, 10)


def test_batches_keep_inventory_order():
    assert batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]


@pytest.mark.parametrize(
    "failed,done,limit,stop",
    [
        (1, 4, 25, False),
        (2, 4, 25, True),
        (0, 4, 0, False),
        (1, 100, 0, True),
        (5, 5, None, False),
        (5, 5, 100, False),
    ],
)
def test_threshold_is_more_than_the_percentage(failed, done, limit, stop):
    assert threshold_exceeded(failed, done, limit) is stop
