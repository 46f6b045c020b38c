"""Running code on several threads at once, each with a database connection of its own."""

import threading
from collections.abc import Callable

from django.db import connection


def at_once(threads: int, work: Callable[[int], None], timeout: float = 60) -> list[Exception]:
    """Call `work(0)` .. `work(threads - 1)`, each on a thread of its own, all released
    together; what they raised, once all have finished.

    Each thread opens its own database connection on first use and closes it at the end,
    so this needs a test that commits (`django_db(transaction=True)`): the threads do not
    see a test's transaction, and a connection left open would outlive the test database.
    """
    start = threading.Barrier(threads)
    failures: list[Exception] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    running = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout)
    return failures
