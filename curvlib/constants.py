"""Constants shared by several layers: defined once here, imported everywhere they are used."""
from __future__ import annotations

#: The two families the paper compares (every model belongs to one).
FAMILIES = ("CNN", "Transformer")

#: Confidence bands (lo, hi] of the boundary comparisons.
BANDS = (0.0, 0.5, 0.7, 0.9, 0.99, 1.0)

#: Jump size of the random-jump claim (the paper's ε_r).
EPS_R = 0.05

#: The random jump's direction: a random sign per pixel (‖d‖ = √D, like FGSM's).
JUMP_KIND = "random_sign"

#: |ε| below which the symmetric grid's steps are dropped in the "away from x" θ summaries: clipping
#: kinks the input path at ε = 0 (the curvature chapter compares the rulers).
AWAY = 0.01

#: Fashion-MNIST's class names in label order.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
