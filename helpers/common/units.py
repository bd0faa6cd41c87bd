"""Units of a loss per character."""

from __future__ import annotations

import math


def bits(nats: float) -> float:
    """Nats per character to bits per character."""
    return nats / math.log(2)


def perplexity(nats: float) -> float:
    """Nats per character to perplexity per character, exp(nats): the number of equally likely
    characters that would leave the model as uncertain."""
    return math.exp(nats)


def per_char(nats: float | None, prefix: str) -> dict:
    """``{prefix_loss_per_char, prefix_bits_per_char, prefix_perplexity}`` of a loss (all None for None)."""
    none = nats is None
    return {
        f"{prefix}_loss_per_char": nats,
        f"{prefix}_bits_per_char": None if none else bits(nats),
        f"{prefix}_perplexity": None if none else perplexity(nats),
    }
