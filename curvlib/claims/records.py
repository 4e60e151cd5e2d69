"""The paper's claims as the ledger states them, and the one row type every verdict returns."""
from __future__ import annotations

#: One entry per claim of the paper, in ledger order: (the paper's statement, chapter with the evidence).
CLAIMS = {
    "calibration (CNNs)": ("CNNs are overconfident: sECE < 0 (Figure 2)", "calibration"),
    "calibration (Transformers)": ("Transformers are not overconfident: sECE ≥ 0 (Figure 2)", "calibration"),
    "calibration (gap)": ("CNNs are more overconfident than Transformers (Figure 2)", "calibration"),
    "boundary (low confidence)": ("At low confidence, Transformers' inputs lie farther from the boundary along "
                                  "FGSM than CNNs' (Figure 3)", "boundary"),
    "boundary (confidence ↔ distance)": ("For CNNs confidence predicts the distance to the boundary; for "
                                         "Transformers much less (Figure 3)", "boundary"),
    "curvature (θ)": ("Transformers' representation paths turn, CNNs' stay almost straight (Figure 5)", "curvature"),
    "curvature (ω)": ("Transformers' paths bend, CNNs' do not (Figure 5), measured as a step-free bending rate along "
                      "FGSM", "curvature"),
    "attention": ("Attention is not additive (eq. 8–13), and that is what bends the Transformers' paths — tested "
                  "as: attention bends an FGSM segment more than the CNNs' ReLUs do", "attention"),
    "surgery (what bends)": ("Attention is what bends the Transformers' paths (eq. 8–13) — tested causally: "
                             "linearising attention at the image removes most of their bending ω", "surgery"),
    "surgery (distance)": ("The curve causes the long travel: taking the Transformers' bend out (every non-linear "
                           "component linearised at the image) brings their boundary closer along FGSM", "surgery"),
    "surgery (low confidence)": ("… most at low confidence, where the paper finds the Transformers' travel longest "
                                 "(Figure 3)", "surgery"),
    "surgery (control)": ("The same surgery matters less for the CNNs, whose paths barely bend", "surgery"),
    "random jump": ("After a small random jump, FGSM reaches the boundary with far less total perturbation: the "
                    "boundary was near all along (Figure 10)", "random_jump"),
}


ROW = ("claim", "paper", "measure", "estimate", "lo", "hi", "verdict", "rule", "chapter", "n", "note")


def _row(claim: str, measure: str, est: float, lo: float, hi: float, v: str, rule: str, n: int, note: str = "",
         **extra) -> dict:
    paper, chapter = CLAIMS[claim]
    return {"claim": claim, "paper": paper, "measure": measure, "estimate": est, "lo": lo, "hi": hi, "verdict": v,
            "rule": rule, "chapter": chapter, "n": n, "note": note, **extra}
