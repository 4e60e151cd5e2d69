"""The paper's claims as records: what the paper states, how the book tests it, and the one row type
every verdict returns.

A :class:`Claim` holds the paper's statement, the chapter with the evidence, the side of a no-effect
value the paper predicts for the book's statistic, and the rule in words. The claim modules compute a
statistic with its interval and hand it to :meth:`Claim.judge`, which applies
:func:`curvlib.stats.verdict` and returns a ledger row (:data:`ROW`); :meth:`Claim.sentence` turns
that row into the chapter's verdict sentence, so no chapter words a verdict itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..experiments.robustness import LEDGER_EPS
from ..experiments.theta import OmegaLineParams
from ..stats import verdict

#: The columns of every ledger row.
ROW = ("claim", "paper", "tested_as", "measure", "estimate", "lo", "hi", "verdict", "rule", "chapter", "n", "note",
       "design")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and its test.

    ``paper``: the claim as the paper makes it; ``tested_as``: the book's own operationalisation of it,
    where the book tests more (or other) than the paper states ("" = the paper's own test).
    ``expect`` (">" or "<"): the side of ``null`` (the statistic's no-effect value) on which the paper
    puts the statistic; ``statistic``: what is measured, in words (a row may name its models instead);
    ``rule``: how the interval is read; ``fmt``: the format of the numbers in :meth:`sentence`;
    ``reads``: (verdict, words) pairs for a chapter's list of sub-results (:meth:`reads_as`).
    """

    name: str
    paper: str
    chapter: str
    expect: str
    null: float
    statistic: str
    rule: str
    fmt: str = ".3g"
    reads: tuple[tuple[str, str], ...] = ()
    tested_as: str = ""

    def __post_init__(self):
        if self.expect not in (">", "<"):
            raise ValueError(f"{self.name}: expect must be '>' or '<', got {self.expect!r}")

    def judge(self, estimate: float, lo: float, hi: float, n: int, *, measure: str | None = None,
              rule: str | None = None, note: str = "", controls: tuple[str, ...] = (), design: str = "",
              seeds: tuple[float, ...] = (), **extra) -> dict:
        """The ledger row of an estimate with its interval [lo, hi] over n units: "holds" when the interval
        lies on the predicted side of ``null``, "opposite" on the other side, "inconclusive" when it contains
        it. ``controls``: verdicts of control comparisons that must also hold — a "holds" whose controls do
        not all hold is "inconclusive" (a generic effect could explain it). ``design``: why this row is not
        evidence on these data — its rule cannot come out the other way, or the design fixes its outcome
        ("" = it is evidence); the ledger marks such rows and leaves them out of its tally. ``seeds``: the
        estimate on each training-seed replicate (the interval then pools them): a "holds" or "opposite"
        needs every seed's estimate on that side of ``null`` too — else "inconclusive" (training noise
        could flip it). ``extra``: more columns."""
        v = verdict(lo, hi, self.null, self.expect)
        if v == "holds" and any(c != "holds" for c in controls):
            v = "inconclusive"
        if seeds and v in ("holds", "opposite"):
            above = [s > self.null for s in seeds]
            side = v == "holds" if self.expect == ">" else v != "holds"  # the interval lies above null
            if not all(a == side and s != self.null for a, s in zip(above, seeds)):
                v = "inconclusive"
        return {"claim": self.name, "paper": self.paper, "tested_as": self.tested_as,
                "measure": measure or self.statistic, "estimate": estimate, "lo": lo, "hi": hi, "verdict": v,
                "rule": rule or self.rule, "chapter": self.chapter, "n": n, "note": note, "design": design,
                "seeds": tuple(float(s) for s in seeds), **extra}

    def reads_as(self, verdict: str) -> str:
        """How a verdict of this claim reads at the end of a sub-result's line: its ``reads`` words, or
        "the paper's claim **<verdict>**" when the record has none for it."""
        return dict(self.reads).get(verdict, f"the paper's claim **{verdict}**")

    def sentence(self, row, profile=None) -> str:
        """A row of :meth:`judge` as one Markdown sentence: what was measured, the estimate with its 95 %
        interval, and the verdict on the paper's claim (``profile``: named when given)."""
        f = self.fmt
        where = f"On this profile ({profile.name}), we measure " if profile is not None else "We measure "
        tested = f" (tested here as: {self.tested_as})" if self.tested_as else ""
        fixed = (" *Not evidence here:* " + row["design"]) if row.get("design") else ""
        return (f"{where}{row['measure']}: {row['estimate']:{f}} [{row['lo']:{f}}, {row['hi']:{f}}] "
                f"(95 % interval, n = {row['n']:,}). The paper: \"{self.paper}\"{tested} — **{row['verdict']}**."
                + fixed)


_NOISE, _ATTACK = LEDGER_EPS["random"], f"{LEDGER_EPS['fgsm'] * 255:g}/255"  # the premise rows' steps
_NEARER = "holds if the interval lies below 1 (the surgered model's boundary is nearer); paired over images"
_CLAIMS = (
    Claim("calibration (CNNs)", "CNNs are overconfident: sECE < 0 (Figure 2)", "calibration", "<", 0.0,
          "mean sECE of the CNNs", "holds if the interval lies below 0 (overconfident)", "+.4f"),
    Claim("calibration (Transformers)", "Transformers are not overconfident: sECE ≥ 0 (Figure 2)", "calibration",
          ">", 0.0, "mean sECE of the Transformers",
          "holds if the interval lies above 0 (underconfident), opposite if below 0 (overconfident); an interval "
          "containing 0 cannot tell calibrated from slightly over- or underconfident: inconclusive", "+.4f"),
    Claim("calibration (gap)", "CNNs are more overconfident than Transformers (Figure 2)", "calibration", "<", 0.0,
          "sECE(CNNs) − sECE(Transformers), family means",
          "holds if the interval lies below 0 (CNNs more overconfident); paired over test images", "+.4f"),
    Claim("robustness (noise)", "Transformers are more robust against corruptions than CNNs (the paper's premise)",
          "boundary", ">", 0.0, f"share still correct after Gaussian noise of RMS {_NOISE:g}, Transformers − CNNs",
          "holds if the interval lies above 0; on the images every model classifies correctly without noise; paired",
          "+.3f", tested_as=f"Gaussian noise at ImageNet-C's mildest level (σ = {_NOISE:g} per pixel)"),
    Claim("robustness (FGSM)", "Transformers need larger perturbations than CNNs to change their decision",
          "boundary", ">", 0.0, f"share still correct after an FGSM step of {_ATTACK}, Transformers − CNNs",
          "holds if the interval lies above 0; on the images every model classifies correctly without the step; "
          "paired", "+.3f", tested_as=f"an FGSM step of {_ATTACK} per pixel"),
    Claim("boundary (low confidence)", "At low confidence, Transformers' inputs lie farther from the boundary along "
          "FGSM than CNNs' (Figure 3)", "boundary", ">", 1.0, "median ε* Transformers / CNNs at low confidence",
          "holds if the interval lies above 1", ".2f"),
    Claim("boundary (confidence ↔ distance)", "For CNNs confidence predicts the distance to the boundary; for "
          "Transformers much less (Figure 3)", "boundary", ">", 0.0,
          "Spearman ρ(confidence, ε*), CNNs' mean − Transformers' mean",
          "holds if the interval lies above 0; on the images every model classifies correctly; paired", "+.2f"),
    Claim("curvature (θ)", "Transformers' representation paths turn, CNNs' stay almost straight (Figure 5)",
          "curvature", ">", 1.0, "mean θ Transformers / CNNs",
          "holds if the interval lies above 1; paired over images", ".2f",
          reads=(("holds", "the paper's ordering holds"), ("opposite", "the paper's ordering is reversed"),
                 ("inconclusive", "the paper's ordering is not decided"),
                 ("no data", "the paper's ordering has no data"))),
    Claim("curvature (ω)", "Transformers' paths bend, CNNs' do not (Figure 5)", "curvature", ">", 0.0,
          "mean ω Transformers − CNNs (rad per unit ε, FGSM)", "holds if the interval lies above 0; paired over images",
          ".3g", tested_as="a step-free bending rate ω along FGSM, the book's measure"),
    Claim("mesh flatness", "Transformers' representations follow curved paths, CNNs' a nearly flat mesh (Figures 1 and "
          "4)", "trajectories", ">", 0.0, "mean ρ Transformers − CNNs",
          "holds if the interval lies above 0 (the Transformers' meshes less flat); the interior plane (no pixel "
          "clips, so ρ is the model's alone), the paper's clipped plane as sensitivity; paired over images", "+.3f",
          reads=(("holds", "On these models the interior meshes agree with the paper's picture for these few images."),
                 ("opposite", "On these models and images the meshes show the reverse of the paper's picture: the "
                              "Transformers' representations are measurably *flatter* than the CNNs' here."),
                 ("inconclusive", "On these models and images, the meshes **do not** show the paper's effect: the "
                                  "Transformers' representations are not measurably more curved than the CNNs' here."),
                 ("no data", "No mesh flatness could be compared on these models and images."))),
    Claim("attention", "Attention is not additive (eq. 8–13), and that is what bends the Transformers' paths",
          "attention", ">", 1.0, "bend of attention (Transformers) / bend of the CNNs' activation layers, FGSM segment",
          "holds if the interval lies above 1; paired over test images", ".2f",
          tested_as="attention bends an FGSM segment more than the CNNs' ReLUs do",
          reads=(("holds", "So per component, the Transformers' attention bends a finite segment more than the CNNs' "
                           "ReLUs; it is one source of bending among the other non-affine components listed above."),
                 ("opposite", "So per component, the Transformers' attention bends a finite segment *less* than the "
                              "CNNs' ReLUs do: the attention's non-linearity is one source of bending among others, "
                              "not what sets the Transformers apart."),
                 ("inconclusive", "So per component, the Transformers' attention does not bend a finite segment "
                                  "measurably more than the CNNs' ReLUs do: the attention's non-linearity is one "
                                  "source of bending among others, not what sets the Transformers apart."),
                 ("no data", "No per-component comparison could be made: a family has no bend to compare."))),
    Claim("surgery (what bends)", "Attention is what bends the Transformers' paths (eq. 8–13)", "surgery", ">", 0.5,
          "share of the Transformers' mean ω removed by linearising attention (FGSM, anchor = the image)",
          "holds if the interval lies above ½ (attention carries most of the bend), opposite if below ½; "
          "paired over images", ".2f",
          tested_as="causally: linearising attention at the image removes most of their bending ω"),
    Claim("surgery (distance)", "The curved path is why the boundary is far along FGSM (robustness)", "surgery", "<",
          1.0, "median ε*(all linearised) / ε*(original), Transformers, FGSM, all images", _NEARER, ".2f",
          tested_as="taking the Transformers' bend out (every non-linear component linearised at the image) "
                    "brings their boundary closer along FGSM",
          reads=(("holds", "the travel is shorter"), ("opposite", "the travel is longer"),
                 ("inconclusive", "the travel is not measurably different"),
                 ("no data", "the travel is not measurable"))),
    Claim("surgery (low confidence)", "Transformers' inputs lie far from the boundary even at low confidence "
          "(Figure 3), because their paths curve", "surgery", "<", 1.0,
          "median ε*(all linearised) / ε*(original), Transformers, FGSM, low confidence", _NEARER, ".2f",
          tested_as="taking the bend out shortens the Transformers' travel at low confidence"),
    Claim("surgery (control)", "CNNs' representation paths are almost straight (Figure 1)", "surgery", "<",
          1.0, "median ratio ε*(all)/ε*(original): Transformers over CNNs, FGSM",
          "holds if the interval lies below 1 (the surgery shortens the Transformers' travel more than the CNNs'); "
          "paired over images", ".2f",
          tested_as="the same surgery matters less for the CNNs, whose paths barely bend"),
    Claim("random jump", "After a small random jump, FGSM reaches the boundary with far less total perturbation: the "
          "boundary was near all along (Figure 10)", "random_jump", "<", 1.0,
          "median total perturbation, jump + FGSM / FGSM alone (Transformers)",
          "holds if the interval lies below 1 and the jump route's second leg also beats both controls (x_r along "
          "FGSM(x), x along FGSM(x_r)); opposite if above 1; paired over test images", ".2f"),
    Claim("random jump (straighter)", "After the random jump the representation path becomes straight (linear), so "
          "FGSM finds the boundary (Figure 10)", "random_jump", "<", 1.0,
          "median ω(x_r) / ω(x) along FGSM, Transformers (step-free bending, mean over the first "
          f"{OmegaLineParams.omega_range:g})",
          "holds if the interval lies below 1 (straighter after the jump); paired over test images", ".2f",
          tested_as="the step-free bending rate ω at the jumped point against at the image")
)
#: Every claim of the paper, in ledger order, by name.
CLAIMS: dict[str, Claim] = {c.name: c for c in _CLAIMS}
