"""What every tier uses and nothing else of vlkit: processes under accelerate, progress bars, atomic file
writes, and config fields that carry their CLI flag."""
