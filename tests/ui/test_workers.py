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


def test_a_task_that_outlives_its_window_reports_to_nobody_without_an_error(qtbot, capfd):
    """Quitting during a long run: the window and the task's signals are gone while its thread
    still hands out partial results and then its outcome."""
    import shiboken6

    runner = TaskRunner()
    release = threading.Event()

    def work(progress):
        release.wait(5)
        for n in range(5):
            progress.partial(n)
            progress.update(None, "still going")
        return "late"

    task = runner.submit(work, name="a long run", on_partial=lambda part: None)
    shiboken6.delete(task.signals)
    release.set()
    runner.pool.waitForDone(5_000)
    assert task.done
    errors = capfd.readouterr().err
    assert "Signal source has been deleted" not in errors and "RuntimeError" not in errors


def test_the_log_records_each_action_and_a_file_waiting_for_trust_is_not_failed(qtbot, caplog):
    import logging

    from studio.core.errors import TrustRequired

    runner = TaskRunner()
    finished = []

    def asks_for_trust(progress):
        raise TrustRequired("model.pkl runs code when loaded.", "Trust it if you know it.",
                            findings=[])

    caplog.set_level(logging.INFO, logger="studio.ui.workers")
    runner.submit(lambda progress: 1, name="Converting to ONNX", on_finish=lambda: finished.append(1))
    runner.submit(asks_for_trust, name="Loading model.pkl", on_finish=lambda: finished.append(1))
    runner.submit(lambda progress: 1, name="Checking the Docker engine", logged=False,
                  on_finish=lambda: finished.append(1))
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=5_000)
    text = caplog.text
    assert "Converting to ONNX…" in text and "Converting to ONNX: done" in text
    assert "Loading model.pkl: waiting for the user to trust the file" in text
    assert "failed" not in text
    assert "Docker engine" not in text
