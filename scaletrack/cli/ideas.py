"""`scaletrack ideas ...`: the "not yet" registry (add, list, rerun, retire, plot)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    literal,
    print_json,
    print_table,
    report_error,
    store_session,
    writing_session,
)
from scaletrack.number_format import fmt_number

ideas_app = typer.Typer(
    help="Ideas that do not work yet: a bar to clear, re-checked on larger checkpoints.",
    no_args_is_help=True,
)


def _fmt_crossing(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return "never"
    return fmt_number(value)


def _display(table: Any) -> Any:
    """A compact view of `ideas_table` for an 80-column terminal."""
    import pandas as pd

    def bar(r: dict) -> str:
        sign = ">=" if r["direction"] == "above" else "<="
        return f"{r['task']}/{r['metric']} {sign} {fmt_number(r['threshold'])}"

    rows = [
        {
            "id": int(r["id"]), "title": r["title"], "status": r["status"], "bar": bar(r),
            "best": fmt_number(r["best_value"]), "tried C": fmt_number(r["max_flops_tried"]),
            "class": r["class"], "crossing C": _fmt_crossing(r["predicted_crossing"]),
        }
        for r in table.to_dict(orient="records")
    ]
    return pd.DataFrame(rows)


@ideas_app.command("add")
def add(
    title: str = typer.Argument(..., help="Short name of the idea."),
    task: str = typer.Option(..., "--task", help="val_loss, addition, reversal, continuation "
                             "or package.module:function."),
    metric: str = typer.Option(..., "--metric", help="Metric of the task to judge (e.g. loss, "
                               "exact_match, logprob, value)."),
    threshold: float = typer.Option(..., "--threshold", help="The bar, in the metric's units."),
    direction: str = typer.Option("above", "--direction",
                                  help="'above': value >= threshold passes; 'below': <=."),
    hypothesis: str | None = typer.Option(None, "--hypothesis", help="Why it should work."),
    store_url: str | None = StoreOption,
) -> None:
    """Register an idea; it becomes due as soon as a checkpoint larger than its last try exists."""
    from scaletrack.evals.ideas import add_idea, get_idea_or_fail

    with writing_session(store_url) as store:  # a failed check leaves no new store
        idea_id = add_idea(store, title, task, metric, threshold, direction, hypothesis)
        idea = get_idea_or_fail(store, idea_id)
        sign = ">=" if idea.direction == "above" else "<="
        console.print(
            f"idea {idea_id}: {idea.title!r} passes when {idea.task}/{idea.metric} {sign} "
            f"{idea.threshold:g} (status {idea.status})",
            markup=False, highlight=False,
        )


@ideas_app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    attempts: bool = typer.Option(False, "--attempts", help="Also list every attempt."),
    store_url: str | None = StoreOption,
) -> None:
    """Show each idea: status, best value, largest scale tried, class, predicted crossing."""
    from scaletrack.evals.ideas import attempts_table, refresh_idea_statuses
    from scaletrack.evals.ideas_table import ideas_table

    with store_session(store_url, create=False) as store:
        refresh_idea_statuses(store)  # the one write: due / not-yet from today's checkpoints
        table = ideas_table(store)
        tries = attempts_table(store) if attempts or as_json else None
        if as_json:
            ideas = table.to_dict(orient="records")
            for row in ideas:
                row["attempts_list"] = (
                    tries[tries["idea_id"] == row["id"]].to_dict(orient="records")
                    if tries is not None else []
                )
            print_json(ideas)
            return
        if table.empty:
            console.print("no ideas yet: add one with `scaletrack ideas add`")
            return
        print_table(_display(table), title="ideas")
        if tries is not None and not tries.empty:
            print_table(tries.drop(columns=["title"]).rename(columns={
                "idea_id": "idea", "checkpoint_id": "ckpt", "flops": "C"}), title="attempts")


@ideas_app.command("rerun")
def rerun(
    device: str = typer.Option("cpu", "--device", help="Torch device for the evaluations."),
    store_url: str | None = StoreOption,
) -> None:
    """Evaluate every due idea on the largest checkpoint and record the attempts."""
    from scaletrack.evals.ideas import rerun_due

    with store_session(store_url, create=False) as store:
        report = rerun_due(store, device=device)
        if not report.attempts and not report.errors:
            console.print("no idea is due: nothing larger than what each was tried on")
            return
        for a in report.attempts:
            verdict = "[green]works[/]" if a.passed else "[yellow]not yet[/]"
            console.print(
                f"idea {a.idea_id} {literal(repr(a.title))}: value {fmt_number(a.value)} vs "
                f"threshold {fmt_number(a.threshold)} ({a.direction}) on checkpoint "
                f"{a.checkpoint_id} (N={fmt_number(a.N)}, D={fmt_number(a.tokens)}, "
                f"C={fmt_number(a.flops)} FLOPs) -> {verdict}",
                highlight=False,
            )
        if report.errors:
            for idea_id, message in report.errors.items():
                report_error(f"idea {idea_id}: {message}")
            raise typer.Exit(1)


@ideas_app.command("retire")
def retire(
    idea_id: int = typer.Argument(..., help="Id of the idea to close."),
    store_url: str | None = StoreOption,
) -> None:
    """Close an idea: it is never due again."""
    from scaletrack.evals.ideas import retire_idea

    with store_session(store_url, create=False) as store:
        retire_idea(store, idea_id)
        console.print(f"idea {idea_id} retired")


@ideas_app.command("remove")
def remove(
    idea_id: int = typer.Argument(..., help="Id of the idea to delete (with its attempts)."),
    store_url: str | None = StoreOption,
) -> None:
    """Delete an idea and its attempts from the registry."""
    from scaletrack.evals.ideas import remove_idea

    with store_session(store_url, create=False) as store:
        idea = remove_idea(store, idea_id)
        console.print(f"idea {idea_id} {idea.title!r} removed", markup=False, highlight=False)


@ideas_app.command("edit")
def edit(
    idea_id: int = typer.Argument(..., help="Id of the idea to change."),
    title: str | None = typer.Option(None, "--title", help="New title."),
    task: str | None = typer.Option(None, "--task", help="New task."),
    metric: str | None = typer.Option(None, "--metric", help="New metric of the task."),
    threshold: float | None = typer.Option(None, "--threshold", help="New bar."),
    direction: str | None = typer.Option(None, "--direction", help="'above' or 'below'."),
    hypothesis: str | None = typer.Option(None, "--hypothesis", help="New hypothesis."),
    store_url: str | None = StoreOption,
) -> None:
    """Change an idea's title, bar or task; its attempts are kept."""
    from scaletrack.evals.ideas import edit_idea

    with store_session(store_url, create=False) as store:
        idea = edit_idea(store, idea_id, title=title, task=task, metric=metric,
                         threshold=threshold, direction=direction, hypothesis=hypothesis)
        sign = ">=" if idea.direction == "above" else "<="
        console.print(
            f"idea {idea.id}: {idea.title!r} passes when {idea.task}/{idea.metric} {sign} "
            f"{idea.threshold:g} (status {idea.status})", markup=False, highlight=False,
        )


@ideas_app.command("plot")
def plot(
    output: Path = typer.Option(..., "-o", "--output", help="Image file to write (png, svg, pdf)."),
    store_url: str | None = StoreOption,
) -> None:
    """Draw each idea's attempts against compute, with its bar."""
    from scaletrack.analysis.figures import save_figure
    from scaletrack.evals.ideas_table import plot_ideas

    with store_session(store_url, create=False) as store:
        for path in save_figure(plot_ideas(store), output):
            console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add `scaletrack ideas ...` to the main app."""
    app.add_typer(ideas_app, name="ideas")

