"""ReadAhead: an iterator run on a thread, a bounded number of items ahead (engine/read_ahead.py)."""

import threading
import time

import pytest

from onpipeline_mail.engine.read_ahead import ReadAhead


class Counting:
    """An iterable of 0..count-1 that records which thread made each item and how far ahead it got."""

    def __init__(self, count, fail_at=None, pause=None):
        self.count = count
        self.fail_at = fail_at
        self.pause = pause  # an Event the iteration waits for before making item 1
        self.made = 0
        self.threads = set()

    def __iter__(self):
        for index in range(self.count):
            if index == 1 and self.pause is not None:
                self.pause.wait(5)
            if index == self.fail_at:
                raise OSError("connection lost at item %d" % index)
            self.threads.add(threading.current_thread().name)
            self.made += 1
            yield index


def wait_until(condition, seconds=5):
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


def test_items_come_in_order_made_on_the_thread():
    source = Counting(50)
    with ReadAhead(source, name="test-ahead") as items:
        assert list(items) == list(range(50))
    assert source.threads == {"test-ahead"}


@pytest.mark.parametrize("depth", [1, 3])
def test_the_thread_stays_at_most_depth_items_ahead(depth):
    source = Counting(20)
    with ReadAhead(source, depth=depth) as items:
        assert wait_until(lambda: source.made == depth)
        time.sleep(0.1)  # would it make more?
        assert source.made == depth
        assert next(items) == 0
        assert wait_until(lambda: source.made == depth + 1)
        time.sleep(0.1)
        assert source.made == depth + 1


def test_an_error_comes_after_the_items_made_before_it_then_the_iteration_ends():
    items = ReadAhead(Counting(10, fail_at=3), depth=5)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="at item 3"):
        next(items)
    with pytest.raises(StopIteration):
        next(items)
    items.close()


def test_close_waits_for_the_item_being_made_and_asks_for_no_more():
    pause = threading.Event()
    source = Counting(10, pause=pause)
    items = ReadAhead(source, depth=1)
    assert next(items) == 0
    # The thread is now inside the iterable, making item 1 (waiting on ``pause``).
    closer = threading.Thread(target=items.close)
    closer.start()
    time.sleep(0.1)
    assert closer.is_alive(), "close() returned while the thread was still using the iterable"
    pause.set()
    closer.join(5)
    assert not closer.is_alive()
    assert source.made == 2
    with pytest.raises(StopIteration):
        next(items)


def test_an_iterable_left_early_by_the_reader_is_closed_with_its_block():
    source = Counting(1000)
    with ReadAhead(source, depth=2) as items:
        assert next(items) == 0
    made = source.made
    time.sleep(0.1)
    assert source.made == made <= 3
