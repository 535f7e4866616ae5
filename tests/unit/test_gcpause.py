"""Pausing the cyclic garbage collector around a large batch of acyclic data."""

from __future__ import annotations

import gc

import pytest

from agent.gcpause import cycle_collection_paused


def test_collection_is_paused_inside_and_back_after_even_when_the_block_fails():
    assert gc.isenabled()
    with cycle_collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="the batch failed"), cycle_collection_paused():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()


def test_a_collector_paused_before_stays_paused():
    gc.disable()
    try:
        with cycle_collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
