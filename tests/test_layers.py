"""curvlib's import layers (the README's architecture table), checked from the sources: run by
``make lint``. A module may import its own layer or lower ones, never a higher one; no import
circle; no curvlib import hidden inside a function; no module over MAX_LINES without a reason."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "curvlib"
#: Lowest first. A module's layer is the first entry its dotted name starts with.
LAYERS = (
    ("base", ("config", "constants", "stats", "toys", "exercises", "")),
    ("io", ("data", "models", "inference", "cache")),
    ("measure", ("measure",)),
    ("runner", ("runner",)),
    ("experiments", ("experiments",)),
    ("claims", ("claims",)),
    ("plots", ("plots",)),
    ("widgets", ("widgets",)),
    ("apps", ("train", "seeds", "cli", "__main__")),
)
MAX_LINES = 400
#: A module over MAX_LINES says why in its docstring: "Longer than 400 lines: <the reason>".
REASON = re.compile(rf"longer than {MAX_LINES} lines: \S.{{20,}}", re.I | re.S)


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (p and module.startswith(p + ".")):
                return i
    raise AssertionError(f"curvlib.{module} is in no layer: add it to LAYERS (and to the README's table)")


def _imports(path: Path):
    """(target module, line, inside a function) for every curvlib import of ``path``."""
    name = _name(path)
    pkg = name.split(".") if path.name == "__init__.py" and name else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        targets = []
        mod = None
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[:len(pkg) - node.level + 1]
            mod = base + (node.module.split(".") if node.module else [])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "curvlib":
            mod = node.module.split(".")[1:]
        if mod is not None:  # ``from X import y``: y itself where it is a module, else X
            for a in node.names:
                sub = [*mod, a.name]
                path = ROOT.joinpath(*sub)
                is_module = path.with_suffix(".py").exists() or (path / "__init__.py").exists()
                targets.append(".".join(sub if is_module else mod))
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and \
                getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__"):
            # a module named by a string hides an import from every check: refused outright
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                    and arg.value.split(".")[0] != "curvlib"):
                raise AssertionError(f"curvlib.{name}:{node.lineno} imports a module by name (import_module): "
                                     "import it with an import statement")
        elif isinstance(node, ast.Import):
            targets += [a.name.partition(".")[2] for a in node.names if a.name.split(".")[0] == "curvlib"]
        for t in targets:
            yield t, node.lineno, id(node) in nested


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p) or "curvlib")
def test_no_module_imports_a_higher_layer_or_inside_a_function(path):
    me = _name(path)
    for target, line, inside in _imports(path):
        assert not inside, f"curvlib.{me}:{line} imports curvlib.{target} inside a function: import at the top"
        if target == "" and me == "":
            continue
        assert _layer(target) <= _layer(me), (
            f"curvlib.{me}:{line} ({LAYERS[_layer(me)][0]}) imports curvlib.{target} "
            f"({LAYERS[_layer(target)][0]}), a higher layer")


def test_no_import_circle():
    graph = {_name(p): {t for t, _, _ in _imports(p)} for p in MODULES}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if t == m or t not in graph:
                continue
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import circle: " + " → ".join(f"curvlib.{c}" if c else "curvlib" for c in cycle))
            if t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p) or "curvlib")
def test_modules_stay_short_or_say_why(path):
    text = path.read_text(encoding="utf-8")
    n = len(text.splitlines())
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert n <= MAX_LINES or REASON.search(doc), (
        f"curvlib.{_name(path)} has {n} lines (> {MAX_LINES}): split it, or say in its docstring "
        f"'Longer than {MAX_LINES} lines: <why>'")


def test_the_checker_sees_a_function_level_import_and_an_upward_one(tmp_path, monkeypatch):
    """The rules above can fail: a planted module that imports upward, inside a function, is caught."""
    fake = tmp_path / "curvlib"
    (fake / "measure").mkdir(parents=True)
    (fake / "experiments").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "experiments" / "__init__.py").write_text("")
    (fake / "measure" / "__init__.py").write_text("")
    bad = fake / "measure" / "bad.py"
    bad.write_text("def f():\n    from ..experiments import travel\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    with pytest.raises(AssertionError, match="inside a function"):
        test_no_module_imports_a_higher_layer_or_inside_a_function(bad)
    bad.write_text("from ..experiments import travel\n")
    with pytest.raises(AssertionError, match="a higher layer"):
        test_no_module_imports_a_higher_layer_or_inside_a_function(bad)
    (fake / "experiments" / "travel.py").write_text("")
    for text in ("from curvlib import experiments\n", "from curvlib.experiments import travel\n",
                 "import curvlib.experiments.travel\n"):  # absolute forms, a package or a module
        bad.write_text(text)
        with pytest.raises(AssertionError, match="a higher layer"):
            test_no_module_imports_a_higher_layer_or_inside_a_function(bad)
    bad.write_text("import importlib\nM = importlib.import_module('curvlib.experiments')\n")
    with pytest.raises(AssertionError, match="by name"):
        test_no_module_imports_a_higher_layer_or_inside_a_function(bad)


def test_the_checker_sees_a_circle_and_a_long_module_without_a_reason(tmp_path, monkeypatch):
    fake = tmp_path / "curvlib"
    (fake / "measure").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "measure" / "__init__.py").write_text("")
    (fake / "measure" / "a.py").write_text("from curvlib.measure import b\n")
    (fake / "measure" / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    monkeypatch.setattr(__import__(__name__), "MODULES", sorted(fake.rglob("*.py")))
    with pytest.raises(AssertionError, match="import circle"):
        test_no_import_circle()
    long = fake / "measure" / "long.py"
    long.write_text('"""A module that is longer than it should be, for no stated reason."""\n' + "x = 1\n" * 401)
    with pytest.raises(AssertionError, match="lines"):
        test_modules_stay_short_or_say_why(long)
    long.write_text('"""Longer than 400 lines: one table of constants that reads best in one place."""\n'
                    + "x = 1\n" * 401)
    test_modules_stay_short_or_say_why(long)


#: Layers that read results: they load no model and no images (that is the experiments' job).
READERS = ("claims", "plots")
#: What loads a model or images: modules ``data`` and ``experiments.examples`` themselves, and these names
#: wherever they come from (``models.load``, ``models.build`` …, under any alias).
LOADERS = {"load", "build", "load_embedded", "load_paper", "load_model", "test_set", "travel_images"}
LOADING_MODULES = {"data", "experiments.examples"}


def _loads(path: Path):
    """(line, what) for every import of a :data:`LOADING_MODULES` module and every use of a :data:`LOADERS`
    name of curvlib's ``models`` or ``data`` in ``path``, whatever alias they are imported under."""
    for target, line, _ in _imports(path):
        if target in LOADING_MODULES:
            yield line, f"imports curvlib.{target}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = set()  # local names bound to curvlib.models or curvlib.data
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("curvlib")):
            aliases |= {a.asname or a.name for a in node.names if a.name in ("models", "data")}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name in ("curvlib.models", "curvlib.data")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LOADERS:
            chain = ast.unparse(node.value)
            if chain in aliases or chain in ("curvlib.models", "curvlib.data"):
                yield node.lineno, f"calls {chain}.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and any(a.name in LOADERS for a in node.names):
            yield node.lineno, "imports " + ", ".join(a.name for a in node.names if a.name in LOADERS)


@pytest.mark.parametrize("path", [p for p in MODULES if LAYERS[_layer(_name(p))][0] in READERS],
                         ids=lambda p: _name(p))
def test_claims_and_plots_load_no_model_and_no_images(path):
    found = list(_loads(path))
    assert not found, (f"curvlib.{_name(path)} ({LAYERS[_layer(_name(path))][0]}) loads: "
                       + "; ".join(f"line {n} {w}" for n, w in found)
                       + " — measure in curvlib.measure and load in curvlib.experiments (e.g. experiments.examples)")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(path: Path):
    """(line, name) for every underscore name ``path`` takes from another curvlib module: imported by name,
    read as an attribute of a curvlib module (any alias, or the dotted ``curvlib.…`` path) or by ``getattr``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    curv_aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("curvlib")):
            for a in node.names:
                if _private(a.name):
                    yield node.lineno, a.name
                curv_aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            curv_aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "curvlib"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in curv_aliases:
                yield node.lineno, f"{ast.unparse(node.value)}.{node.attr}"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and _private(node.args[1].value) and isinstance(node.args[0], ast.Name) \
                and node.args[0].id in curv_aliases:
            yield node.lineno, f"getattr({node.args[0].id}, {node.args[1].value!r})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p) or "curvlib")
def test_no_private_name_crosses_a_module(path):
    found = list(_private_uses(path))
    assert not found, (f"curvlib.{_name(path)} uses another module's private names: "
                       + ", ".join(f"{w} (line {n})" for n, w in found) + " — make them public or keep them home")


def test_the_checker_sees_a_loader_in_claims_and_a_borrowed_private_name(tmp_path, monkeypatch):
    fake = tmp_path / "curvlib"
    (fake / "claims").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "claims" / "__init__.py").write_text("")
    (fake / "data.py").write_text("")
    (fake / "models.py").write_text("")
    bad = fake / "claims" / "bad.py"
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    (fake / "experiments").mkdir()
    (fake / "experiments" / "__init__.py").write_text("")
    (fake / "experiments" / "examples.py").write_text("")
    for text in ("from .. import data\n", "from .. import models\nm = models.load('vit', None)\n",
                 "from .. import models as M\nm = M.build('vit')\n", "import curvlib.models\ncurvlib.models.load(1)\n",
                 "import curvlib.models as cm\ncm.load_paper(1)\n", "from ..experiments import examples\n",
                 "from ..experiments.travel_check import travel_images\n"):
        bad.write_text(text)
        with pytest.raises(AssertionError, match="loads"):
            test_claims_and_plots_load_no_model_and_no_images(bad)
    bad.write_text("from .. import models\nf = models.family('vit')\n")
    test_claims_and_plots_load_no_model_and_no_images(bad)  # metadata is not loading
    for text in ("from ..measure.curvature import _unfused\n", "from ..measure import probe\nprobe._lines(1, 2, 3)\n",
                 "import curvlib.measure.probe as p\np._lines(1)\n",
                 "import curvlib\ncurvlib.measure.probe._lines(1)\n",
                 "from ..measure import probe\ngetattr(probe, '_lines')(1)\n"):
        bad.write_text(text)
        with pytest.raises(AssertionError, match="private names"):
            test_no_private_name_crosses_a_module(bad)
