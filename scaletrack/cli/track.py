"""`scaletrack tag` (tags and notes on runs and sweeps) and `scaletrack logs` (a run's logs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from scaletrack.cli.common import StoreOption, console, echo, fail, store_session

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike


def resolve_run_key(store: StoreLike, run: str) -> str:
    """The run key `run` names: a whole key or a unique prefix of one (else a one-line exit)."""
    if store.get_run(run) is not None:
        return run
    matches = [k for k in store.runs()["run_key"] if str(k).startswith(run)]
    if len(matches) != 1:
        from scaletrack.store.engine import redact_url

        why = "no run" if not matches else f"{len(matches)} runs"
        fail(f"{why} with key {run!r} in {redact_url(store.url)}")
    return str(matches[0])


def log_folders(store: StoreLike, run_key: str, checkpoint_dir: Path | None) -> list[Path]:
    """Existing `<checkpoint root>/<run key>/logs` folders of a run: under --checkpoint-dir,
    above any of its registered checkpoints, or under the store's default root."""
    from scaletrack.sweeps.command import log_dir
    from scaletrack.sweeps.runner import default_checkpoint_root

    roots: list[Path] = []
    if checkpoint_dir is not None:
        roots.append(checkpoint_dir)
    for path in store.checkpoints(run_key=run_key)["path"]:
        roots.extend(Path(str(path)).parents)
    roots.append(default_checkpoint_root(store.url))
    found: list[Path] = []
    for root in roots:
        folder = log_dir(root, run_key)
        if folder.is_dir() and folder.resolve() not in {f.resolve() for f in found}:
            found.append(folder)
    return found


def logs_command(
    run: str = typer.Argument(..., help="Run key (or a unique prefix of one)."),
    tail: int | None = typer.Option(None, "--tail", min=1, help="Only the last N lines of each."),
    checkpoint_dir: Path | None = typer.Option(
        None, "--checkpoint-dir", help="Checkpoint root the sweep ran with (if not the default)."
    ),
    store: str | None = StoreOption,
) -> None:
    """Print a run's log files (command cells, Slurm tasks), newest first."""
    with store_session(store, create=False) as st:
        key = resolve_run_key(st, run)
        folders = log_folders(st, key, checkpoint_dir)
    files = [f for folder in folders for f in folder.iterdir() if f.is_file()]
    if not files:
        where = ", ".join(str(f) for f in folders) or "no <checkpoint root>/<run>/logs folder"
        fail(f"no log files for run {key} ({where}; try --checkpoint-dir)")
    files.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    for i, file in enumerate(files):
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        if tail is not None:
            lines = lines[-tail:]
        if i:
            echo("")
        echo(f"==> {file} <==")
        for line in lines:
            echo(line)


def tag_command(
    target: str = typer.Argument(..., help="Run key (or unique prefix), or a sweep name with "
                                 "--sweep."),
    tags: list[str] = typer.Argument(None, help="Tags to add."),
    remove: list[str] = typer.Option([], "--remove", help="A tag to take off (repeatable)."),
    note: str | None = typer.Option(None, "--note", help="Set the free-text note."),
    sweep: bool = typer.Option(False, "--sweep", help="TARGET is a sweep, not a run."),
    store: str | None = StoreOption,
) -> None:
    """Tag a run (or a sweep) and set its note; prints the tags it now carries."""
    tags = list(tags or [])
    if not tags and not remove and note is None:
        fail("give tags to add, --remove TAG or --note TEXT")
    with store_session(store, create=False) as st:  # tags what exists: never a new store
        if sweep:
            now = st.tag(sweep=target, add=tags, remove=remove, note=note)
            what = f"sweep {target}"
        else:
            key = resolve_run_key(st, target)
            now = st.tag(run_key=key, add=tags, remove=remove, note=note)
            what = f"run {key}"
    console.print(f"{what}: tags {', '.join(now) if now else '(none)'}"
                  + (" (note set)" if note is not None else ""), markup=False, highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("logs")(logs_command)
    app.command("tag")(tag_command)
