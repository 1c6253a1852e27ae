"""The package's shape, checked: imports run one way, modules stay short, and tests mirror modules.

The rule (README, "Architecture"): a subpackage imports only itself and the subpackages DEPENDS_ON
names for it, which are all lower in the data flow; nothing in the package imports `scripts/` or
`serving/`, and no two modules import each other, directly or through others. Imports inside
functions count: a lazy import is still a dependency.
"""

import ast
import pathlib
import shutil
import textwrap

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "tf_ganimation"
MAX_MODULE_LINES = 400

# Lower stages first. The top-level __init__ (the public API) and the deprecated old paths re-export
# from every stage and are not a stage themselves.
DEPENDS_ON = {
    "core": set(),
    "model": {"core"},
    "faces": {"core"},
    "data": {"core", "faces"},
    "synthetic": {"core", "data"},
    "runs": {"core", "model"},
    "evaluation": {"core", "model", "data", "synthetic", "runs"},
    "export": {"core", "model", "runs"},
    "training": {"core", "model", "data", "runs", "evaluation"},  # rendering faces is the script's (train.py)
    "editing": {"core", "model", "faces", "runs", "export", "synthetic"},
    "cli": {"core"},
    "flags": {"core", "runs"},
}
FACADES = {"tf_ganimation"}


def _module_name(path: pathlib.Path, root: pathlib.Path = PROJECT_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {_module_name(path): path for path in sorted(folder.rglob("*.py"))}


def _imports(path: pathlib.Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts a.b when it is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _graph(package: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, for the package folder `package`."""
    modules = {_module_name(path, package.parent): path for path in sorted(package.rglob("*.py"))}
    return {name: {imported for imported in _imports(path) if imported in modules and imported != name}
            for name, path in modules.items()}


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`a imports b` for each import of a higher or undeclared stage (DEPENDS_ON)."""
    violations = []
    for module, imported in graph.items():
        if module in FACADES:
            continue
        for target in imported:
            if target in FACADES:
                continue
            if _stage(target) != _stage(module) and _stage(target) not in DEPENDS_ON[_stage(module)]:
                violations.append(f"{module} imports {target}")
    return sorted(violations)


def test_every_subpackage_has_a_declared_place():
    stages = {_stage(name) for name in _modules(PACKAGE) if name not in FACADES}
    assert stages == set(DEPENDS_ON), "a new subpackage needs its place in DEPENDS_ON (and the README)"


def test_no_stage_imports_a_higher_or_undeclared_stage():
    violations = _upward_imports(_graph())
    assert not violations, "\n".join(violations)


def test_the_declared_stages_form_no_cycle():
    # DEPENDS_ON itself must be a partial order: otherwise "lower" means nothing.
    order, visiting = [], set()

    def visit(stage, path):
        assert stage not in visiting, f"stage cycle: {' -> '.join(path + [stage])}"
        if stage in order:
            return
        visiting.add(stage)
        for lower in DEPENDS_ON[stage]:
            visit(lower, path + [stage])
        visiting.discard(stage)
        order.append(stage)

    for stage in DEPENDS_ON:
        visit(stage, [])


def test_no_import_cycle_between_modules():
    graph = {name: targets - FACADES for name, targets in _graph().items() if name not in FACADES}
    # A subpackage's __init__ is imported with each of its modules; it may not import them back.
    state: dict[str, int] = {}
    cycles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]) if target in path else target)
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("folder", ["tf_ganimation", "serving"])
def test_nothing_in_the_libraries_imports_scripts_and_the_package_does_not_import_serving(folder):
    offending = []
    for name, path in _modules(PROJECT_ROOT / folder).items():
        for imported in _imports(path):
            if (imported.split(".")[0] == "scripts"
                    or (folder == "tf_ganimation" and imported.split(".")[0] == "serving")):
                offending.append(f"{name} imports {imported}")
    assert not offending, "\n".join(offending)


def test_the_import_graph_test_sees_a_violation(tmp_path):
    # A copy of the package with one module added that imports upward (core -> training), in each way
    # an import can be written, lazily inside a function included: the check reports each of them.
    package = tmp_path / "tf_ganimation"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "core" / "shortcut.py").write_text(textwrap.dedent("""
        from tf_ganimation.training import trainer
        import tf_ganimation.training.checkpoints


        def train(config, workdir):
            from tf_ganimation.training.monitor import TrainingMonitor
            return trainer.train(config, workdir), TrainingMonitor
    """))
    assert _upward_imports(_graph(PACKAGE)) == []
    assert _upward_imports(_graph(package)) == [f"tf_ganimation.core.shortcut imports tf_ganimation.training{name}"
                                                 for name in ("", ".checkpoints", ".monitor", ".trainer")]


@pytest.mark.parametrize("folder", ["tf_ganimation", "serving", "scripts"])
def test_modules_are_readable_in_one_sitting(folder):
    long = {str(path.relative_to(PROJECT_ROOT)): length for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
            if (length := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("folder", ["tf_ganimation", "serving"])
def test_every_module_has_its_mirrored_test_file(folder):
    missing = []
    for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
        if path.name.startswith("__") or path.name.startswith("_"):
            continue
        relative = path.relative_to(PROJECT_ROOT / folder)
        test_dir = PROJECT_ROOT / "tests" / (relative.parent if folder == "tf_ganimation"
                                             else pathlib.Path("serving") / relative.parent)
        if not (test_dir / f"test_{path.stem}.py").is_file():
            missing.append(f"{folder}/{relative} -> {test_dir.relative_to(PROJECT_ROOT)}/test_{path.stem}.py")
    assert not missing, "\n".join(missing)


def test_test_file_names_are_unique():
    names = [path.name for path in (PROJECT_ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)
