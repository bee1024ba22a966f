"""Code shape of the package: the largest module and function (lines), the modules over 600
lines (the house limit) and the imports written inside functions. Prints figures; asserts
nothing.

Run: .venv/bin/python bench/bench_code_shape.py
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("analysis", "evals", "models", "store", "sweeps", "scaletrack")
MODULE_LIMIT = 600


def main() -> None:
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    inner_imports, inner_modules = 0, set()
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = str(path.relative_to(ROOT))
            source = path.read_text(encoding="utf-8")
            modules.append((source.count("\n"), name))
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                functions.append((node.end_lineno - node.lineno + 1, f"{name}:{node.name}"))
                found = sum(isinstance(sub, ast.Import | ast.ImportFrom) for sub in ast.walk(node))
                inner_imports += found
                if found:
                    inner_modules.add(name)
    modules.sort(reverse=True)
    functions.sort(reverse=True)
    over = [f"{name} ({n})" for n, name in modules if n > MODULE_LIMIT]
    print(f"modules read: {len(modules)}")
    print(f"largest module: {modules[0][1]} ({modules[0][0]} lines)")
    print(f"largest function: {functions[0][1]} ({functions[0][0]} lines)")
    listed = f": {', '.join(over)}" if over else ""
    print(f"modules over {MODULE_LIMIT} lines: {len(over)}{listed}")
    print(f"imports inside functions: {inner_imports} in {len(inner_modules)} modules")


if __name__ == "__main__":
    main()
