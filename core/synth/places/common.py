"""Colours and sign shapes shared by the place modules."""

from __future__ import annotations

from core.synth.signs import BLACK, DIAMOND, OCTAGON, SQUARE, sign

ORANGE = (255, 112, 18)
WHITE = (240, 240, 236)

__all__ = ["BLACK", "DIAMOND", "OCTAGON", "ORANGE", "SQUARE", "WHITE", "sign"]
