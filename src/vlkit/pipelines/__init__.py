"""The library half of each command: read the inputs, call the stages, write an output folder (zero-shot,
evaluation, attention, the sweep, the embedded default, the demo, the HTML report)."""
