"""Measurement, apart from answering: evidence recall and context size per mode (`retrieval`), what
the model answers with each context strategy (`answers`), answer scoring (`scoring`) and the `auto`
router's accuracy (`routing`). `kb eval` and the benchmarks run these; nothing in kb's answering
path imports them."""
