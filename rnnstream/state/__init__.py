"""Per-entity state: preallocated slot arrays, the entity index, and their file format."""

from .fileformat import read_state_file, write_state_file
from .slots import FieldSpec, SlotState, StateBlob

__all__ = ["FieldSpec", "SlotState", "StateBlob", "read_state_file", "write_state_file"]
