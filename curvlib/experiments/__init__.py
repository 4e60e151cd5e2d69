"""The book's experiments: each module computes one result per model (sharded, cached) and
registers it on import, as ``timm/models/__init__.py`` does; chapters and ``curvlib run`` call the
same registration, so they share one cache entry.

=================  ============================  ==================================================
module             experiments                   result
=================  ============================  ==================================================
``calibration``    calibration                   per-image confidence and correctness
``robustness``     robustness                    still correct after a fixed step along FGSM or noise
``travel``         travel                        ε* per image along FGSM or random directions
``travel_check``   travel_check                  the search's ε* checked by a dense scan
``theta``          theta, theta_step             finite-step θ along paths; its step sweep
``curvature``      curvature                     step-free κ and ω along paths, per block
``random_jump``    random_jump,                  ε* after a small random step, beside the direct one;
                   random_jump_relative,         after a step sized to each image's own ε*;
                   jump_path                     ω and θ along FGSM from x and from the jumped point
``mesh``           mesh                          flatness ρ of each model's mesh around the image
``attention``      attention                     additivity defects per layer type
``surgery``        surgery_path, surgery_travel,  ω, ε* and the turning point with parts linearised
                   surgery_turning
=================  ============================  ==================================================
"""
from ..runner import registered
from . import (  # noqa: F401 (registered on import)
    attention,
    calibration,
    curvature,
    mesh,
    random_jump,
    robustness,
    surgery,
    theta,
    travel,
    travel_check,
)

#: The order ``curvlib run all`` computes them in (cheap and most-read first).
BOOK_ORDER = ("calibration", "robustness", "travel", "travel_check", "theta", "theta_step", "curvature", "random_jump",
              "random_jump_relative", "jump_path", "mesh", "attention", "surgery_path", "surgery_travel",
              "surgery_turning")


def registry() -> dict:
    """Every registered experiment, by name, in the book's order."""
    order = {n: i for i, n in enumerate(BOOK_ORDER)}
    return dict(sorted(registered().items(), key=lambda kv: order.get(kv[0], len(order))))
