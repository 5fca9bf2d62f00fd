"""The rebuild's progress bar on stderr: events read of the stores' heads, events/s and ETA."""

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class EventsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- events/s" if speed is None else f"{speed:,.0f} events/s")


class RebuildProgress:
    """`projections.rebuild_reports.Progress` drawn with rich; one bar per context."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            EventsPerSecond(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = False

    def start(self, context: str, total: int) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self._task = self._progress.add_task(context, total=max(total, 0))

    def advance(self, count: int) -> None:
        if self._task is None:
            return
        task = self._progress.tasks[self._task]
        if task.total is not None and task.completed + count > task.total:
            self._progress.update(self._task, total=task.completed + count)  # caught-up events
        self._progress.advance(self._task, count)

    def stop(self) -> None:
        if self._started:
            self._progress.stop()
