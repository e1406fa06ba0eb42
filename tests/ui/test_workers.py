"""The TaskRunner: partial results reach the GUI thread in order, before the result."""

import threading

from studio.ui.workers import TaskRunner


def test_partial_results_arrive_on_the_gui_thread_in_order_before_the_result(qtbot):
    runner = TaskRunner()
    seen: list[tuple[str, object, bool]] = []
    gui = threading.get_ident()

    worker = []

    def work(progress):
        worker.append(threading.get_ident())
        for n in range(20):
            progress.partial(n)
        return "whole"

    finished = []
    task = runner.submit(
        work, name="counting",
        on_partial=lambda part: seen.append(("partial", part, threading.get_ident() == gui)),
        on_result=lambda result: seen.append(("result", result, threading.get_ident() == gui)),
        on_finish=lambda: finished.append(True))
    qtbot.waitUntil(lambda: bool(finished), timeout=5_000)
    assert task.done and worker[0] != gui  # handed out on the pool's thread, seen on the GUI's
    assert seen == [("partial", n, True) for n in range(20)] + [("result", "whole", True)]


def test_a_task_without_on_partial_still_runs(qtbot):
    runner = TaskRunner()
    results = []

    def work(progress):
        progress.partial("nobody listens")
        return 42

    runner.submit(work, on_result=results.append)
    qtbot.waitUntil(lambda: results == [42], timeout=5_000)
