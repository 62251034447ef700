"""Question answering about driving scenes: DriveLM import/export (drivelm) and the challenge's metrics (metrics).

Submodules are imported on use; ``core.vqa.metrics`` needs ``pycocoevalcap`` and Java only when
language metrics are computed.
"""
