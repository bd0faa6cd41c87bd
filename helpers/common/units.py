"""Units of a loss per character."""
from __future__ import annotations

import math


def bits(nats: float) -> float:
    """Nats per character to bits per character."""
    return nats / math.log(2)
