"""Handles: open, close, context manager, use after close, garbage collection."""

from __future__ import annotations

import gc
import select
import threading
import warnings

import pytest

from support import DEFAULT_CONFIG, Database, tandem, wait_until

# Every public method, with arguments that would be valid on an open handle.
METHODS = [
    ("install", ()),
    ("validate", (DEFAULT_CONFIG,)),
    ("configure", (DEFAULT_CONFIG,)),
    ("attach", ("default",)),
    ("activate", ("contacts_companies",)),
    ("sync", ()),
    ("socket", ()),
    ("fileno", ()),
    ("process", ()),
    ("run", ()),
    ("stop", ()),
    ("status", ()),
    ("report", ("links",)),
    ("set_event_callback", (print,)),
    ("set_event_callback", (None,)),
    ("on_event", (print,)),
]


def test_open_and_close(database: Database) -> None:
    db = tandem.open(database.conninfo)
    assert isinstance(db, tandem.Tandem) and not db.closed
    assert "open" in repr(db)
    assert database.backends() >= 1
    db.close()
    assert db.closed and "closed" in repr(db)
    wait_until(lambda: database.backends() == 0, 10, "the connection to go away after close()")


def test_constructor_and_open_are_the_same(database: Database) -> None:
    with tandem.Tandem(database.conninfo) as db:
        assert type(db) is tandem.Tandem


def test_close_twice_is_harmless(database: Database) -> None:
    db = tandem.open(database.conninfo)
    db.close()
    db.close()
    assert db.closed


@pytest.mark.parametrize("name,args", METHODS, ids=[m[0] + str(i) for i, m in enumerate(METHODS)])
def test_every_method_after_close_raises_misuse(database: Database, name: str, args: tuple) -> None:
    db = tandem.open(database.conninfo)
    db.close()
    with pytest.raises(tandem.MisuseError) as caught:
        getattr(db, name)(*args)
    assert caught.value.code == tandem.MISUSE
    assert "closed" in caught.value.message


def test_context_manager_closes(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        assert not db.closed
        db.install()
    assert db.closed
    wait_until(lambda: database.backends() == 0, 10, "the connection to go away after the with block")


def test_context_manager_closes_on_exception(database: Database) -> None:
    with pytest.raises(KeyError):
        with tandem.open(database.conninfo) as db:
            raise KeyError("inside")
    assert db.closed


def test_entering_a_closed_handle_raises(database: Database) -> None:
    db = tandem.open(database.conninfo)
    db.close()
    with pytest.raises(tandem.MisuseError):
        with db:
            pass


def test_garbage_collection_closes_with_resource_warning(database: Database) -> None:
    db = tandem.open(database.conninfo)
    assert database.backends() >= 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del db
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught), caught
    wait_until(lambda: database.backends() == 0, 10, "the connection to go away after garbage collection")


def test_handle_with_event_callback_is_collected(database: Database) -> None:
    db = tandem.open(database.conninfo)
    db.on_event(lambda event: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del db
        gc.collect()
    wait_until(lambda: database.backends() == 0, 10,
               "a handle holding an event callback to be collected (no reference cycle)")


def test_many_open_close(database: Database) -> None:
    for _ in range(50):
        with tandem.open(database.conninfo) as db:
            db.socket()
    wait_until(lambda: database.backends() == 0, 10, "every connection to go away")


def test_handles_are_independent(database: Database) -> None:
    first = tandem.open(database.conninfo)
    second = tandem.open(database.conninfo)
    first.close()
    second.install()  # still works
    second.close()


def test_socket_is_a_pollable_descriptor(handle: tandem.Tandem) -> None:
    descriptor = handle.socket()
    assert isinstance(descriptor, int) and descriptor >= 0
    assert handle.fileno() == descriptor
    readable, _, _ = select.select([handle], [], [], 0)  # select() accepts the handle itself
    assert readable in ([], [handle])


def test_event_callback_must_be_callable(handle: tandem.Tandem) -> None:
    with pytest.raises(TypeError):
        handle.set_event_callback("not callable")  # type: ignore[arg-type]
    function = lambda event: None  # noqa: E731
    assert handle.on_event(function) is function  # usable as a decorator
    handle.set_event_callback(None)


def test_stop_from_another_thread_on_an_idle_handle(handle: tandem.Tandem) -> None:
    outcome = []

    def stop() -> None:
        try:
            outcome.append(handle.stop())
        except BaseException as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=stop)
    thread.start()
    thread.join(10)
    assert outcome == [None]
