"""The paper's claims as verdicts: statistics on the experiments' results, each with an interval,
and the ledger that collects them.

===============  ============================================================================
``records``      :class:`Claim` records (the paper's statements, how each is judged) and the row type
``resample``     paired resampling helpers shared by the claims (families, same images, ranks)
``calibration``  sECE per family and its gap
``boundary``     ε* by confidence band; rank correlation of confidence and ε*
``curvature``    θ and ω per family, mesh flatness, and the curvature chapter's tables and sentences
``trajectories`` the trajectories chapter's mesh grid, plane flatness and its verdict (a chapter claim)
``attention``    attention bends vs the CNNs' ReLU bends; the chapter's score-path and component tables
``random_jump``  ε* after a random jump vs the direct path; the jump-size sweep
``surgery``      what linearising each part removes (ω, ε*, the turning point)
``ablations``    variants of the embedded models: curvedness, training dynamics, component swaps
``tally``        :func:`ledger`: every claim on one profile, and its markdown
``seeded``       the ledger pooled over seed replicates: two-stage intervals, per-seed estimates
===============  ============================================================================

Public names are re-exported: ``from curvlib import claims; claims.ledger(profile)``; the seed ledger is
``claims.seeded``.
"""
from . import seeded
from .attention import attention_claim
from .boundary import boundary_bands, boundary_claim, distance, rank_correlation, rank_correlation_claim
from .calibration import SECE_RULE, calibration_by_model, calibration_family, calibration_gap
from .curvature import (
                        block_omega_table,
                        curvature_table,
                        curvature_theta_claim,
                        flatness_gap,
                        omega_gap,
                        ruler_table,
                        step_exponent,
                        step_table,
)
from .random_jump import JUMP_RATIOS, jump_ratios, random_jump_claim
from .records import CLAIMS, ROW
from .resample import family_ratio, spearman
from .tally import ledger, ledger_markdown, other_ledgers, profiles_markdown, side_by_side, tally, tally_markdown

__all__ = ["CLAIMS", "JUMP_RATIOS", "ROW", "SECE_RULE", "attention_claim", "block_omega_table", "boundary_bands",
           "boundary_claim", "calibration_by_model", "calibration_family", "calibration_gap", "curvature_table",
           "curvature_theta_claim", "distance", "family_ratio", "flatness_gap", "jump_ratios", "ledger",
           "ledger_markdown", "omega_gap", "random_jump_claim", "rank_correlation", "rank_correlation_claim",
           "ruler_table", "seeded", "spearman", "step_exponent", "step_table",
           "tally", "tally_markdown", "other_ledgers", "profiles_markdown", "side_by_side"]
