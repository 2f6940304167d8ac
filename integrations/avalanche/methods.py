"""The continual-learning methods of the comparison (needs no Avalanche, so reports and argument parsers can use
it without importing Avalanche): the one list, in report order. What each method is: :mod:`.comparison`."""

METHODS = ("naive", "replay", "herding", "gdumb", "atom-replay", "atom-gdumb")
CONDENSING = ("atom-replay", "atom-gdumb")  # methods whose memory is condensed (they report condensation time)
GDUMB_LIKE = ("gdumb", "atom-gdumb")  # methods trained on the memory only (GDumb epochs)
