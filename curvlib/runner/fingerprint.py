"""Code fingerprints: a cached result is keyed by the code that computed it.

An experiment's key holds :func:`code_fingerprint` of :func:`module_closure` of the module that
registers it: that module and every curvlib module it imports, directly or not, read from the
source files (not imported). Editing a docstring or a comment changes no key; editing code that an
experiment can run changes its key, and only the keys of experiments that can run it.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import io
import tokenize
from pathlib import Path

#: The package's folder: module ``a.b`` is the file ``a/b.py`` (or ``a/b/__init__.py``) under it.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGE = PACKAGE_DIR.name


def source_fingerprint(source: str) -> str:
    """Hash of Python ``source``'s tokens without docstrings, comments, blank lines or layout inside
    brackets (16 hex digits), the same on every Python version (``ast.dump`` is not: 3.12 adds
    fields, so a cache filled on one machine would not be served on another)."""
    lines = source.splitlines(keepends=True)

    def char_col(row: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, tokenize characters
        return len(lines[row - 1].encode()[:byte_col].decode())

    docstrings = []  # (start, end) positions of docstring expressions
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            e = body[0]
            docstrings.append(((e.lineno, char_col(e.lineno, e.col_offset)),
                               (e.end_lineno, char_col(e.end_lineno, e.end_col_offset))))

    def text(start, end) -> str:
        if start[0] == end[0]:
            return lines[start[0] - 1][start[1]:end[1]]
        return lines[start[0] - 1][start[1]:] + "".join(lines[start[0]:end[0] - 1]) + lines[end[0] - 1][:end[1]]

    out, skip_newline, fstring = [], False, []  # fstring: open f-string starts (Python ≥ 3.12 splits them)
    names = {tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>", tokenize.NEWLINE: "<newline>"}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = tokenize.tok_name[tok.type]
        if kind == "FSTRING_START":
            fstring.append(tok.start)
            continue
        if fstring:
            if kind == "FSTRING_END":
                start = fstring.pop()
                if not fstring:
                    out.append(text(start, tok.end))  # the whole f-string, as one token like Python 3.11's
            continue
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.STRING and any(a <= tok.start and tok.end <= b for a, b in docstrings):
            skip_newline = True
            continue
        if tok.type == tokenize.NEWLINE and skip_newline:
            skip_newline = False
            continue
        skip_newline = False
        out.append(names.get(tok.type, tok.string))
    return hashlib.sha256("\x00".join(out).encode()).hexdigest()[:16]


def _file(module: str) -> Path:
    """The source file of curvlib module ``module`` (dotted, relative to the package, "" = the package)."""
    base = PACKAGE_DIR.joinpath(*module.split(".")) if module else PACKAGE_DIR
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    raise ValueError(f"no curvlib module {module!r}")


def _relative(module: str) -> str:
    """``curvlib.measure.travel`` or ``measure.travel`` → ``measure.travel``."""
    return module[len(PACKAGE) + 1:] if module.startswith(PACKAGE + ".") else "" if module == PACKAGE else module


def _imports(tree: ast.AST, pkg: list[str]) -> list[str]:
    """The curvlib modules (relative names) that the import statements of ``tree`` name, at any depth;
    ``pkg``: the package the file belongs to (relative imports resolve against it)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                target = _relative(node.module).split(".") if node.module != PACKAGE else []
            else:
                continue
            out.append(".".join(target))
            for a in node.names:  # ``from . import data``: a module; ``from .x import f``: a name
                sub = ".".join([*target, a.name])
                if a.name != "*" and _exists(sub):
                    out.append(sub)
        elif isinstance(node, ast.Import):
            out += [_relative(a.name) for a in node.names if a.name == PACKAGE or a.name.startswith(PACKAGE + ".")]
    return out


@functools.cache
def module_closure(module: str) -> tuple[str, ...]:
    """``module`` and every curvlib module it imports, directly or through others, sorted (names
    relative to the package). Read from the sources' import statements, at any depth of the file."""
    seen, todo = set(), [_relative(module)]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        path = _file(m)
        here = m.split(".") if m else []
        todo += _imports(ast.parse(path.read_text(encoding="utf-8")), here if path.name == "__init__.py" else here[:-1])
    return tuple(sorted(seen))


def function_fingerprint(fn) -> str:
    """Hash of the code ``fn`` runs: its curvlib module's :func:`module_closure`, or, for a function
    defined outside curvlib (a user's script, a test), its own file and the closure of every curvlib
    module that file imports."""
    module = fn.__module__
    if module == PACKAGE or module.startswith(PACKAGE + "."):
        return code_fingerprint(module_closure(module))
    path = Path(inspect.getsourcefile(fn))
    text = path.read_text(encoding="utf-8")
    mods = set()
    for m in _imports(ast.parse(text), []):
        mods.update(module_closure(m))
    h = hashlib.sha256(f"{path.name}:{source_fingerprint(text)};{code_fingerprint(tuple(mods))}".encode())
    return h.hexdigest()[:16]


def _exists(module: str) -> bool:
    try:
        _file(module)
        return True
    except ValueError:
        return False


@functools.cache
def code_fingerprint(modules: tuple[str, ...]) -> str:
    """Hash of the code of curvlib ``modules`` (:func:`source_fingerprint` of each), so a cached
    result is never served after the code that computed it changed."""
    h = hashlib.sha256()
    for m in sorted(set(modules)):
        h.update(f"{m}:{source_fingerprint(_file(m).read_text(encoding='utf-8'))};".encode())
    return h.hexdigest()[:16]
