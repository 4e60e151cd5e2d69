"""The chapters stay thin: code cells call curvlib and show what it returns (issue #28).

A chapter's *shown* code — every code cell before its "Exercises" heading, except the validation
cells nbval runs (tagged ``remove-cell``) and the worked examples a reader learns from (tagged
``worked-example``) — is at most :data:`MAX_CODE_LINES` non-blank lines, and no chapter words a
verdict itself: verdict sentences come from the claim records (:meth:`curvlib.claims.records.Claim.sentence`).
"""
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for p in BOOK.glob("*.md") if p.stem not in ("references", "notation"))
MAX_CODE_LINES = 80
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)


def shown_code(text: str) -> list[str]:
    """The counted code lines of a chapter's MyST source (see the module docstring)."""
    body = re.split(r"^## Exercises\b", text, maxsplit=1, flags=re.M)[0]
    lines = []
    for cell in CELL.findall(body):
        tags = re.search(r"^:tags: \[(.*?)\]", cell, re.M)
        tags = {t.strip() for t in tags.group(1).split(",")} if tags else set()
        if tags & {"remove-cell", "worked-example"}:
            continue
        lines += [ln for ln in cell.splitlines() if ln.strip() and not ln.startswith(":tags:")]
    return lines


def test_the_counter_skips_validation_worked_examples_and_exercises():
    text = ("```{code-cell} ipython3\na = 1\n\nb = 2\n```\n"
            "```{code-cell} ipython3\n:tags: [remove-cell]\nassert a\n```\n"
            "```{code-cell} ipython3\n:tags: [hide-input, worked-example]\ntoy = 3\n```\n"
            "## Exercises\n```{code-cell} ipython3\nanswer = 4\n```\n")
    assert shown_code(text) == ["a = 1", "b = 2"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_are_thin(chapter):
    n = len(shown_code(chapter.read_text(encoding="utf-8")))
    assert n <= MAX_CODE_LINES, f"{chapter.name}: {n} lines of shown code (> {MAX_CODE_LINES}): move logic to curvlib"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_do_not_word_verdicts_themselves(chapter):
    bad = [ln for ln in shown_code(chapter.read_text(encoding="utf-8"))
           if re.search(r"""\bf["'].*\{[^}]*verdict""", ln)]
    assert not bad, f"{chapter.name} assembles verdict prose itself (use Claim.sentence): {bad}"


def test_method_constants_in_the_prose_are_the_codes():
    """Prose that names a method constant (not a result) says what the code uses: a changed constant fails
    here instead of leaving the sentence stale."""
    import inspect

    from curvlib import config, constants, train
    from curvlib.claims import ablations, seeded

    abl = (BOOK / "ablations.md").read_text()
    curvedness = inspect.signature(ablations.curvedness).parameters
    r = curvedness["eps_range"].default
    assert rf"$\varepsilon \in [-{r:g}, {r:g}]$" in abl
    assert rf"$|\varepsilon| > {constants.AWAY:g}$" in abl
    assert f"confidence ≤ {curvedness['low_confidence'].default:g}" in abl
    *first, last = train.SNAPSHOT_EPOCHS
    names = " and ".join(f"`{m}`" for m in train.SNAPSHOT_MODELS)
    assert f"snapshots of {names} after epochs {', '.join(map(str, first))} and {last}" in abl
    files = [f.name for f in config.DATA_DIR.joinpath("checkpoints").iterdir()]
    for m in train.SNAPSHOT_MODELS:
        shipped = {int(e) for f in files for e in re.findall(rf"^{m}_ep(\d+)\.safetensors$", f)}
        assert shipped >= set(train.SNAPSHOT_EPOCHS), (m, sorted(shipped))
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    n_models, n_seeds = len(config.EMBEDDED_MODELS), len(seeded.ready(seeded.replicates(
        config.get_profile("embedded", env={}))))
    assert n_models in words and n_seeds in words, (n_models, n_seeds)
    claims = (BOOK / "claims.md").read_text()
    assert f"about {words[n_models]} networks trained once each" in claims
    assert f"with {words[n_seeds]} seeds per model" in claims
    assert f"the {words[n_models]} models' seed-k" in claims
