"""Where the models we train and ship with the package live (no torch needed to find them)."""

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"
RESTORE = MODELS / "restore"
SEGMENT_NUCLEI = MODELS / "segment_nuclei"
