"""What decoding a clip found: declared frames, decoded ones, damage and gaps (one per clip)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DecodeReport:
    """What decoding a clip found: frames the container declares and frames that decoded.

    ``frames_expected`` is the container's frame count (None when it declares none, e.g. MKV);
    ``frames_skipped`` frames not decoded because no sampled frame depends on them
    (:mod:`core.video_plan`);
    ``frames_corrupt`` decoded frames the decoder flagged as damaged (concealed errors);
    ``errors`` packets that failed to decode plus frames dropped for impossible timestamps;
    ``gaps`` the spans [t0, t1] (seconds, on the sampled frames' clock) with no decoded frame,
    reported when the clip shows damage; ``truncated`` the stream stopped before its declared
    end. ``complete`` is True when none of that happened and decoding ran to the end.
    """

    frames_expected: int | None = None
    frames_decoded: int = 0
    frames_skipped: int = 0
    frames_corrupt: int = 0
    errors: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)
    truncated: bool = False
    finished: bool = False  # decoding reached the end (not stopped early by the caller)

    @property
    def frames_read(self) -> int:
        """Frames accounted for: decoded, or skipped as not needed."""
        return self.frames_decoded + self.frames_skipped

    @property
    def complete(self) -> bool:
        short = self.frames_expected is not None and self.frames_read < self.frames_expected
        return (self.finished and not short and not self.truncated and not self.gaps
                and not self.frames_corrupt and not self.errors)

    def to_dict(self) -> dict:
        return {"frames_expected": self.frames_expected, "frames_decoded": self.frames_decoded,
                "frames_skipped": self.frames_skipped,
                "frames_corrupt": self.frames_corrupt, "errors": self.errors,
                "gaps": [[round(a, 3), round(b, 3)] for a, b in self.gaps],
                "truncated": self.truncated, "complete": self.complete}

    def summary(self) -> str:
        """One line for people: "" when complete, else what was missing."""
        if self.complete:
            return ""
        if not self.finished:
            return "decoding did not finish"
        of = f" of {self.frames_expected}" if self.frames_expected is not None else ""
        parts = [f"{self.frames_decoded}{of} frames decoded"
                 + (f" ({self.frames_skipped} more not needed by the samples)" if self.frames_skipped else "")]
        if self.frames_corrupt:
            parts.append(f"{self.frames_corrupt} damaged")
        if self.errors:
            parts.append(f"{self.errors} unreadable")
        if self.gaps:
            spans = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in self.gaps[:5])
            parts.append(f"missing {spans}" + (f" and {len(self.gaps) - 5} more" if len(self.gaps) > 5 else ""))
        elif self.truncated:
            parts.append("the clip ends early")
        return "damaged clip: " + "; ".join(parts)


__all__ = ["DecodeReport"]
