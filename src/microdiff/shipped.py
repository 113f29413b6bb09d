"""Where the models we train and ship with the package live (no torch needed to find them)."""

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"
RESTORE = MODELS / "restore"
SEGMENT_NUCLEI = MODELS / "segment_nuclei"
# the nuclei model distilled to one DDIM step (tools/distill_segment.py)
SEGMENT_NUCLEI_FAST = MODELS / "segment_nuclei_fast"
SEGMENT = {"nuclei": SEGMENT_NUCLEI, "nuclei_fast": SEGMENT_NUCLEI_FAST}
# cells from the nuclear and cytoplasm channels and the nuclei found, run beside a nuclei-only model
SEGMENT_CELLS = MODELS / "segment_cells"
