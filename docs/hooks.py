"""mkdocs hooks: the reference pages generated from the code at build time, so they cannot drift.

A page asks for a generated part with a marker on a line of its own:

- `<!-- scaletrack:grid -->`: every key of a grid file, from the pydantic model
  (`scaletrack.sweeps.spec.GridSpec` and its sections): type, default, constraints, description.
- `<!-- scaletrack:cli -->`: every command and option of the typer app `scaletrack.cli.main:app`.
- `<!-- scaletrack:schema -->`: every table, column, key and index of `scaletrack.store.schema`.
- `<!-- scaletrack:api GROUP -->`: mkdocstrings blocks for the names of `import scaletrack as st`
  in GROUP (`<!-- scaletrack:api-index -->` is the table of all of them).

The folders sweeps/, store/, analysis/, models/ and evals/ become `scaletrack.*` only through
setuptools' package-dir, which griffe (mkdocstrings' loader) does not follow, so `on_config`
stages the installed layout (scripts/stage_package.py) into a temporary folder and points the
python handler at it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- scaletrack:([\w-]+)(?: ([\w-]+))? -->$", re.M)
_stage: Path | None = None


# ---------------------------------------------------------------------------------------------
# mkdocs events


@event_priority(100)  # before mkdocstrings reads its handlers' settings
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Stage the installed package layout and give its folder to mkdocstrings' python handler."""
    global _stage
    _cleanup()
    _stage = Path(tempfile.mkdtemp(prefix="scaletrack-docs-"))
    spec = importlib.util.spec_from_file_location("_stage_package",
                                                  ROOT / "scripts" / "stage_package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.stage(_stage)
    plugin = config.plugins["mkdocstrings"]
    handlers = plugin.config.handlers  # read when the handler is first used, after this
    handlers.setdefault("python", {})["paths"] = [str(_stage)]
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace each marker with the part it names (an unknown marker fails the build)."""

    def replace(match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind not in GENERATORS:
            raise ValueError(f"{page.file.src_uri}: unknown generated part {kind!r}")
        return GENERATORS[kind](arg)

    return MARKER.sub(replace, markdown)


def on_post_build(config: MkDocsConfig) -> None:
    _cleanup()


def on_shutdown() -> None:
    _cleanup()


def _cleanup() -> None:
    global _stage
    if _stage is not None:
        shutil.rmtree(_stage, ignore_errors=True)
        _stage = None


# ---------------------------------------------------------------------------------------------
# Shared formatting


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, newlines folded)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def prose(text: str) -> str:
    """Help text written for a terminal, as Markdown text: no HTML, no emphasis by accident."""
    out = []
    for part in re.split(r"(`[^`]*`)", text):  # code spans stay as they are
        if not part.startswith("`"):
            part = part.replace("<", "&lt;").replace("*", "\\*")
        out.append(part)
    return "".join(out)


def code(text: Any) -> str:
    """Inline code whose content may hold backticks."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def first_paragraph(doc: str | None) -> str:
    doc = inspect.cleandoc(doc or "")
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        for base in (2, 10):
            for exp in range(16, 64):
                if value == base**exp:
                    return f"{base}^{exp}"
                if value == base**exp - 1:
                    return f"{base}^{exp} − 1"
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return repr(value)


# ---------------------------------------------------------------------------------------------
# Grid file reference (pydantic)


def _toml(value: Any) -> str:
    """A default value as it would be written in TOML."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return code("true" if value else "false")
    if isinstance(value, str):
        return code(f'"{value}"')
    if isinstance(value, list):
        return code("[" + ", ".join(_toml(v).strip("`") for v in value) + "]")
    if isinstance(value, int | float):
        return code(_number(value))
    return code(repr(value))


def _constraint_texts(meta: list[Any], prefix: str = "", unit: str = "item") -> list[str]:
    out = []
    for item in meta:
        nested = getattr(item, "metadata", None)
        if isinstance(nested, list):  # a Field(...) inside Annotated[...]
            out += _constraint_texts(nested, prefix, unit)
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attr, None)
            if value is not None and not isinstance(nested, list):
                out.append(f"{prefix}{sign} {_number(value)}")
        for attr, words in (("min_length", "at least"), ("max_length", "at most")):
            value = getattr(item, attr, None)
            if value is not None and not isinstance(nested, list):
                out.append(f"{prefix}{words} {value} {unit}{'' if value == 1 else 's'}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None and not isinstance(nested, list):
            out.append(f"{prefix}matches {code(getattr(pattern, 'pattern', pattern))}")
        func = getattr(item, "func", None)
        if func is not None:
            doc = first_paragraph(func.__doc__).rstrip(".")
            out.append(f"{prefix}passes `{func.__name__}`" + (f" ({doc[0].lower()}{doc[1:]})"
                                                             if doc else ""))
    return _tightest(out)


def _tightest(texts: list[str]) -> list[str]:
    """Drop a bound that a tighter one of the same kind makes redundant (≤ 1024, ≤ 2^63 − 1)."""
    def value(text: str) -> float | None:
        number = text.split(" ", 1)[1] if " " in text else ""
        match = re.fullmatch(r"(\d+)\^(\d+)( − 1)?", number)
        if match:
            return int(match.group(1)) ** int(match.group(2)) - (1 if match.group(3) else 0)
        try:
            return float(number.replace(",", ""))
        except ValueError:
            return None

    keep = []
    for text in texts:
        prefix, _, rest = text.rpartition("each ") if "each " in text else ("", "", text)
        sign = rest.split(" ", 1)[0]
        mine = value(rest)
        looser = False
        if sign in ("<", "≤", ">", "≥") and mine is not None:
            for other in texts:
                o_prefix, _, o_rest = other.rpartition("each ") if "each " in other else (
                    "", "", other)
                o_sign, o_value = o_rest.split(" ", 1)[0], value(o_rest)
                if other is text or o_prefix != prefix or o_value is None:
                    continue
                if sign in ("<", "≤") and o_sign in ("<", "≤") and o_value < mine:
                    looser = True
                if sign in (">", "≥") and o_sign in (">", "≥") and o_value > mine:
                    looser = True
        if not looser and text not in keep:
            keep.append(text)
    return keep


def _unit(tp: Any) -> str:
    """What a length constraint counts for this type: items of a list, else characters."""
    tp = _strip_optional(tp)
    return "item" if typing.get_origin(tp) in (list, dict) else "character"


def _describe_type(tp: Any, prefix: str = "") -> tuple[str, list[str]]:
    """A readable type and the constraints found inside it (per item for lists)."""
    from pydantic import BaseModel

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        name, inner = _describe_type(args[0], prefix)
        return name, inner + _constraint_texts(list(args[1:]), prefix, _unit(args[0]))
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        names, found = [], []
        for part in parts:
            name, inner = _describe_type(part, prefix)
            names.append(name)
            found += inner
        return " or ".join(dict.fromkeys(names)), found
    if origin is typing.Literal:
        return " or ".join(_toml(a) for a in args), []
    if origin is list:
        name, inner = _describe_type(args[0], "each ")
        return f"list of {name}", inner
    if origin is dict:
        key, _ = _describe_type(args[0])
        value, inner = _describe_type(args[1], "each value ")
        return f"table of {key} → {value}", inner
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"table ({tp.__name__})", []  # replaced by a link in _section_rows
    plain = {bool: "boolean", int: "integer", float: "float", str: "string", Any: "any value"}
    return plain.get(tp, getattr(tp, "__name__", str(tp))), []


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "the section's defaults"
        return _toml(value)
    if field.default is PydanticUndefined:
        return "**required**"
    return _toml(field.default)


def _models_in(tp: Any) -> list[type]:
    """The pydantic models a field's type holds (directly, in a union, or as list items)."""
    from pydantic import BaseModel

    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    found: list[type] = []
    for arg in typing.get_args(tp):
        found += _models_in(arg)
    return found


def _section_rows(model: type) -> list[str]:
    rows = ["| key | type | default | constraints | description |",
            "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        kind, found = _describe_type(field.annotation)
        found = _tightest(_constraint_texts(list(field.metadata), unit=_unit(field.annotation))
                          + found)
        for sub in _models_in(field.annotation):
            kind = kind.replace(f"table ({sub.__name__})",
                                f"table, see [{sub.__name__}](#{_model_anchor(sub)})")
        rows.append("| " + " | ".join([
            f"`{name}`", cell(kind), cell(_default(field)), cell("; ".join(found) or "—"),
            cell(field.description or ""),
        ]) + " |")
    return rows


def _grid_sections() -> Iterator[tuple[str, type]]:
    """(heading, model) for the grid and every table it can hold, in file order."""
    from scaletrack.sweeps.spec import GridSpec

    def walk(path: str, family: str, model: type) -> Iterator[tuple[str, type]]:
        title = "top level" if not path else f"`{path}`"
        yield title + (f" (family = \"{family}\")" if family else ""), model
        for name, field in model.model_fields.items():
            variants = _models_in(field.annotation)
            is_list = typing.get_origin(_strip_optional(field.annotation)) is list
            for sub in variants:
                if is_list:
                    sub_path = f"{path[1:-1]}.{name}[]"
                else:
                    sub_path = f"[{path[1:-1]}.{name}]" if path else f"[{name}]"
                sub_family = family
                if len(variants) > 1:
                    tag = sub.model_fields.get("family")
                    sub_family = typing.get_args(tag.annotation)[0] if tag else sub.__name__
                yield from walk(sub_path if not is_list else f"[{sub_path}]", sub_family, sub)

    yield from walk("", "", GridSpec)


def _model_anchor(model: type) -> str:
    return "grid-" + model.__name__.lower()


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(parts) == 1:
            return _strip_optional(parts[0])
    if typing.get_origin(tp) is typing.Annotated:
        return _strip_optional(typing.get_args(tp)[0])
    return tp


def grid_reference(_arg: str | None = None) -> str:
    """Every table and key of a grid file, from `GridSpec` and its sections."""
    out: list[str] = []
    for title, model in _grid_sections():
        title = re.sub(r"`\[([\w.]+)\[\]\]`", r"`\1 = [{ ... }]` entries", title)
        out.append(f"### {title[0].upper() + title[1:]} {{#{_model_anchor(model)}}}\n")
        out.append(f"*Validated by `{model.__module__}.{model.__qualname__}`.*\n")
        doc = inspect.cleandoc(model.__doc__ or "")
        if doc:
            out.append(doc + "\n")
        extra = model.model_config.get("extra")
        out.append("Other keys: " + ("allowed, as described above." if extra == "allow" else
                                     "rejected (an unknown key is an error).") + "\n")
        out += _section_rows(model)
        out.append("")
    return "\n".join(out)


def grid_keys() -> list[tuple[str, str]]:
    """(model name, key) for every key the grid reference lists, for tests."""
    return [(model.__name__, key) for _, model in _grid_sections() for key in model.model_fields]


# ---------------------------------------------------------------------------------------------
# CLI reference (click, through typer)


def _cli_param(param: Any) -> list[str]:
    names = ", ".join(code(o) for o in [*param.opts, *param.secondary_opts])
    if param.param_type_name == "argument":
        names = code(param.name.upper())
        kind = "argument" + ("" if param.required else " (optional)")
    else:
        kind = "flag" if param.is_flag else "option"
        if param.multiple:
            kind += " (repeatable)"
    type_text = _cli_type(param)
    limits = []
    for attr, sign in (("min", "≥"), ("max", "≤")):
        value = getattr(param, attr, None)
        if value is None:
            value = getattr(getattr(param, "type", None), attr, None)
        if value is not None:
            limits.append(f"{sign} {value}")
    if limits:
        type_text += " (" + ", ".join(limits) + ")"
    default = param.default
    if param.required:
        default_text = "**required**"
    elif default is None or callable(default) or (getattr(param, "is_flag", False)
                                                   and default is False):
        default_text = "—"
    elif isinstance(default, list | tuple):
        default_text = code(list(default)) if default else "—"
    else:
        default_text = code(getattr(default, "value", default))
    help_text = getattr(param, "help", None) or ""
    if getattr(param, "envvar", None):
        help_text += f" (env: {param.envvar})"
    return [names, kind, cell(type_text), cell(default_text), cell(prose(help_text))]


def _cli_type(param: Any) -> str:
    """The value an option takes: from click's type, or from typer's annotation."""
    import enum
    from pathlib import PurePath

    ptype = vars(param).get("type")  # click's; typer's own parameters have an annotation
    choices = getattr(ptype, "choices", None)
    if isinstance(choices, list | tuple):
        return " or ".join(code(getattr(c, "value", c)) for c in choices)
    if ptype is not None:
        return str(getattr(ptype, "name", ptype)).lower()
    descriptor = getattr(param, "type_descriptor", None)
    tp = getattr(descriptor, "annotation", None)
    tp = _strip_optional(tp)
    if typing.get_origin(tp) in (list, tuple):
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is typing.Literal:
        return " or ".join(code(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " or ".join(code(m.value) for m in tp)
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return "path"
    names = {str: "text", int: "integer", float: "number", bool: "boolean"}
    return names.get(tp, getattr(tp, "__name__", "text"))


def _cli_commands() -> Iterator[tuple[list[str], Any]]:
    """(path of names, click command) for every visible command, depth first, in help order.

    Typer carries its own copy of click, so commands are recognised by what they have."""
    import typer

    from scaletrack.cli.main import app

    root = typer.main.get_command(app)

    def walk(path: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if hasattr(command, "list_commands"):
            ctx = command.context_class(command, info_name=" ".join(path))
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk([*path, name], sub)

    yield from walk(["scaletrack"], root)


def cli_commands() -> list[str]:
    """Every command's full name (`scaletrack sweep run`, ...), for tests."""
    return [" ".join(path) for path, _ in _cli_commands()]


def cli_reference(_arg: str | None = None) -> str:
    out: list[str] = []
    for path, command in _cli_commands():
        full = " ".join(path)
        depth = min(len(path) + 1, 4)
        out.append(f"{'#' * depth} `{full}`\n")
        ctx = command.context_class(command, info_name=full)
        help_text = inspect.cleandoc(command.help or "").replace("\b\n", "")
        if help_text:
            out.append(prose(help_text) + "\n")
        usage = " ".join(command.collect_usage_pieces(ctx))
        usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), usage)
        usage = re.sub(r"\[(\w+)\]", lambda m: f"[{m.group(1).upper()}]", usage)
        out.append(f"```text\n{full} {usage}\n```\n")
        params = [p for p in command.params if not getattr(p, "hidden", False)
                  and p.name != "help"]
        if params:
            out.append("| name | kind | type | default | help |")
            out.append("| --- | --- | --- | --- | --- |")
            out += ["| " + " | ".join(_cli_param(p)) + " |" for p in params]
            out.append("")
        if hasattr(command, "list_commands"):
            subs = [name for name in command.list_commands(ctx)
                    if not command.get_command(ctx, name).hidden]
            out.append("Commands: " + ", ".join(
                f"[`{name}`](#{_anchor(f'{full} {name}')})" for name in subs) + "\n")
    return "\n".join(out)


def _anchor(text: str) -> str:
    """The id mkdocs' toc gives a heading `` `text` ``."""
    from markdown.extensions.toc import slugify

    return slugify(text, "-")


# ---------------------------------------------------------------------------------------------
# Store schema (SQLAlchemy)


def _source_notes() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Comments in store/schema.py: the block above each table, and a column line's own."""
    table_notes: dict[str, str] = {}
    column_notes: dict[tuple[str, str], str] = {}
    lines = (ROOT / "store" / "schema.py").read_text(encoding="utf-8").splitlines()
    table = None
    pending: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#") and not line.startswith(" "):
            pending.append(stripped.lstrip("# "))
            continue
        start = re.match(r"^\w+ = sa\.Table\($", line)
        if start:
            name = re.search(r'"(\w+)"', lines[i + 1])
            table = name.group(1) if name else None
            if table and pending:
                table_notes[table] = " ".join(pending)
        if not stripped.startswith("#"):
            pending = [] if line and not line.startswith(" ") else pending
        column = re.search(r'sa\.Column\(\s*"(\w+)".*#\s*(.+)$', line)
        if column and table:
            column_notes[(table, column.group(1))] = column.group(2)
        elif table and stripped.startswith("#") and line.startswith(" "):
            nxt = re.search(r'sa\.Column\(\s*"(\w+)"', lines[i + 1]) if i + 1 < len(lines) else None
            if nxt:
                column_notes[(table, nxt.group(1))] = stripped.lstrip("# ")
            else:  # a column whose name is on the following line
                follow = "\n".join(lines[i + 1:i + 3])
                nxt = re.search(r'sa\.Column\(\s*"(\w+)"', follow)
                if nxt:
                    column_notes[(table, nxt.group(1))] = stripped.lstrip("# ")
    return table_notes, column_notes


def _column_type(column: Any) -> str:
    from sqlalchemy.types import TypeDecorator

    kind = column.type
    if isinstance(kind, TypeDecorator):
        return f"[{type(kind).__name__}](#column-types)"
    return str(kind)


def schema_tables() -> list[str]:
    from scaletrack.store import schema

    return [t.name for t in schema.metadata.sorted_tables]


def schema_reference(_arg: str | None = None) -> str:
    from sqlalchemy.types import TypeDecorator

    from scaletrack.store import schema

    table_notes, column_notes = _source_notes()
    custom = {type(c.type) for t in schema.metadata.tables.values() for c in t.columns
              if isinstance(c.type, TypeDecorator)}
    out: list[str] = ["### Column types\n",
                      "Types of scaletrack's own (`scaletrack.store.coltypes`), on SQLite and "
                      "PostgreSQL alike:\n"]
    for kind in sorted(custom, key=lambda k: k.__name__):
        impl = kind.impl if isinstance(kind.impl, type) else type(kind.impl)
        out.append(f"- `{kind.__name__}` (over {impl.__name__.upper()}): "
                   f"{prose(first_paragraph(kind.__doc__))}")
    out.append("")
    for table in sorted(schema.metadata.sorted_tables, key=lambda t: list(
            schema.metadata.tables).index(t.name)):
        out.append(f"### `{table.name}`\n")
        if table.name in table_notes:
            out.append(table_notes[table.name] + "\n")
        out.append("| column | type | null | key | default | note |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for column in table.columns:
            keys = []
            if column.primary_key:
                keys.append("primary key")
            if column.unique:
                keys.append("unique")
            if column.index:
                keys.append("indexed")
            for fk in column.foreign_keys:
                action = f", on delete {fk.ondelete.lower()}" if fk.ondelete else ""
                keys.append(f"→ `{fk.target_fullname}`{action}")
            default = column.server_default.arg if column.server_default is not None else None
            out.append("| " + " | ".join([
                f"`{column.name}`", cell(_column_type(column)),
                "yes" if column.nullable and not column.primary_key else "no",
                cell(", ".join(keys) or "—"), cell(code(default) if default else "—"),
                cell(column_notes.get((table.name, column.name), "")),
            ]) + " |")
        out.append("")
        checks = [c for c in table.constraints if type(c).__name__ == "CheckConstraint"]
        for check in checks:
            out.append(f"- check: {code(str(check.sqltext))}")
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            cols = ", ".join(c.name for c in index.columns)
            unique = "unique " if index.unique else ""
            out.append(f"- {unique}index {code(index.name)} on ({cols})")
        if table.dialect_options["sqlite"].get("with_rowid") is False:
            out.append("- on SQLite a `WITHOUT ROWID` table, clustered on its primary key")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Python API (mkdocstrings blocks for the names of `import scaletrack as st`)

API_GROUPS: dict[str, str] = {
    "store": "Store",
    "sweeps": "Sweeps",
    "fits": "Fits",
    "emergence": "Emergence",
    "plots": "Plots",
    "ideas": "Ideas registry",
    "checkpoints": "Checkpoints and evaluations",
    "tracking": "Tracking your own trainer",
    "errors": "Errors",
}
# module of a name's target -> group (the first prefix that matches; plot_* names are plots)
_MODULE_GROUPS = (
    ("scaletrack.store", "store"),
    ("scaletrack.workflows", "sweeps"),
    ("scaletrack.analysis.classify", "emergence"),
    ("scaletrack.analysis.two_step", "emergence"),
    ("scaletrack.evals.ideas_table", "ideas"),
    ("scaletrack.analysis.figures", "plots"),
    ("scaletrack.analysis", "fits"),
    ("scaletrack.evals.ideas", "ideas"),
    ("scaletrack.evals", "checkpoints"),
    ("scaletrack.tracking", "tracking"),
    ("scaletrack.errors", "errors"),
)


def public_api() -> dict[str, str]:
    """Every public name of `scaletrack` -> the dotted path of the object it is."""
    import scaletrack

    names = {name: target.replace(":", ".") for name, target in scaletrack._LAZY.items()}
    for name in ("ScaletrackError", "ConfigError", "DataError"):
        names[name] = f"scaletrack.errors.{name}"
    return names


def api_group(name: str, target: str) -> str:
    if name.startswith("plot_"):
        return "plots"
    if name.endswith("Error"):
        return "errors"
    for prefix, group in _MODULE_GROUPS:
        if target.startswith(prefix + ".") or target == prefix:
            return group
    return "other"


def api_blocks(group: str | None) -> str:
    if group not in API_GROUPS and group != "other":
        raise ValueError(f"unknown API group {group!r}")
    out = []
    for name, target in sorted(public_api().items(), key=lambda kv: kv[0].lower()):
        if api_group(name, target) != group:
            continue
        out.append(f"::: {target}\n    options:\n      heading: \"st.{name}\"\n"
                   f"      toc_label: \"st.{name}\"\n")
    if group == "other":  # names no group claims yet are shown on the index page
        return ("## Other names\n\n" + "\n".join(out)) if out else ""
    if not out:
        out.append("No public names in this group at present.\n")
    return "\n".join(out)


def api_index(_arg: str | None = None) -> str:
    from scaletrack import __getattr__ as lazy

    rows = ["| name | area | what it is |", "| --- | --- | --- |"]
    for name, target in sorted(public_api().items(), key=lambda kv: kv[0].lower()):
        group = api_group(name, target)
        obj = lazy(name) if name not in ("ScaletrackError", "ConfigError", "DataError") else (
            getattr(importlib.import_module("scaletrack.errors"), name))
        summary = first_paragraph(getattr(obj, "__doc__", "")) if obj is not None else ""
        page = f"{group}.md" if group in API_GROUPS else ""
        rows.append(f"| [`st.{name}`]({page}#{target}) | {API_GROUPS.get(group, 'Other')} | "
                    f"{cell(prose(summary))} |")
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[str | None], str]] = {
    "grid": grid_reference,
    "cli": cli_reference,
    "schema": schema_reference,
    "api": api_blocks,
    "api-index": api_index,
}
