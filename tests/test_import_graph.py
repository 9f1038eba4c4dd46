"""synth's modules import each other in one direction: no circle, counting every import the code can
run (module level, inside functions, under `if TYPE_CHECKING:`), read from the source, so a circle
that only a rarely called function closes is caught too. And each package's `__init__` says what it
holds: its docstring names each of its modules (`name.py`) and subpackages (`name/`)."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SYNTH = Path(__file__).resolve().parents[1] / "synth"


def _modules(root: Path = SYNTH) -> dict[str, Path]:
    """Dotted name -> file of every module of synth (a package by its __init__.py)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The synth modules `name` imports anywhere in its file. `from pkg import x` names module pkg.x
    where x is a submodule, else pkg itself (a name pkg's __init__ defines); relative imports are
    resolved against the module's package. Importing pkg.x also runs pkg's __init__, as it does for
    every import of a submodule; that is not counted as an edge (it would make every __init__ that
    re-exports a child a circle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                out.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
    return {m for m in out if m in known and m != name}


def import_graph(root: Path = SYNTH) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The reader itself: a circle closed only inside a function, or by a relative import, is found."""
    pkg = tmp_path / "synth"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from synth.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .a import x\n")
    graph = import_graph(pkg)
    assert graph["synth.sub.a"] == {"synth.sub.b"} and graph["synth.sub.b"] == {"synth.sub.a"}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())


def test_no_import_circle_in_synth():
    graph = import_graph()
    assert "synth.verify.pipeline" in graph and "synth.verify.lid.router" in graph
    try:
        order = tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}; move what both sides share down to a "
                    f"module both can import")
    assert set(order) == set(graph)


def test_each_package_init_names_its_modules():
    missing = {}
    for init in sorted(SYNTH.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        here = init.parent
        wanted = [p.name for p in here.glob("*.py") if p.name != "__init__.py"]
        wanted += [f"{p.name}/" for p in here.iterdir() if (p / "__init__.py").is_file()]
        absent = sorted(w for w in wanted if w not in doc)
        if absent:
            missing[str(init.relative_to(SYNTH.parent))] = absent
    assert not missing, f"name these in the package's __init__ docstring (what each holds): {missing}"
