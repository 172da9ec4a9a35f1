"""The generated shapes world, the embedded default's data: scenes and their rendering, the caption grammar,
the world folder and its `meta.json`."""
