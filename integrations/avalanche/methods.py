"""The continual-learning methods of the comparison (needs no Avalanche, so reports and argument parsers can use
it without importing Avalanche): the one list, in report order. What each method is: :mod:`.comparison`."""

#: The compared methods, in report order.
METHODS = ("naive", "replay", "herding", "gdumb", "atom-replay", "atom-gdumb")
CONDENSING = ("atom-replay", "atom-gdumb")  #: methods whose memory is condensed (they report condensation time)
GDUMB_LIKE = ("gdumb", "atom-gdumb")  #: methods trained on the memory only (GDumb epochs)

#: What "memory" means in every comparison table (one home; the benchmark's report imports it without Avalanche).
MEMORY_NOTE = ("Memory = stored images, the same storage for every method; an ATOM memory's stored images may be "
               "factorised (f x f tiles each), and the ATOM methods train on their decoded samples (f² per stored "
               "image).")
