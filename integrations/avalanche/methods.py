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

# -- the strategies x memories grid (issue 22) -------------------------------------------------------------------------

#: Strategies of the grid: Avalanche's replay (``Naive`` + ``ReplayPlugin``), ``ER_ACE``, both with the balanced
#: fine-tune on the memory (``+ft``, :class:`.finetune.BalancedFineTunePlugin`), GDumb and ``DER``.
STRATEGIES = ("replay", "er_ace", "er_ace+ft", "replay+ft", "gdumb", "der")
MEMORY_KINDS = ("random", "herding", "atom")  #: what a memory holds: real samples (random, herding) or condensed
#: The grid's cells ``(strategy, memory kind)``, in report order; GDumb takes no storage policy (no herding cell).
GRID = tuple((s, k) for s in STRATEGIES for k in MEMORY_KINDS if (s, k) != ("gdumb", "herding"))
PRIMARY_STRATEGY = "er_ace+ft"  #: the strategy the targets of issue 22 are stated for, named before the runs
FINETUNED = ("er_ace+ft", "replay+ft")  #: strategies with the balanced fine-tune
#: Strategies whose memory minibatch is ``Recipe.batch_size_mem`` and that replay only when the memory holds that many
#: samples (their loader drops the last partial minibatch).
DROP_LAST = ("er_ace", "er_ace+ft", "der")
#: The six methods of the first comparison as grid cells (old records are read through this, never rewritten).
LEGACY_CELLS = {"naive": ("naive", None), "replay": ("replay", "random"), "herding": ("replay", "herding"),
                "gdumb": ("gdumb", "random"), "atom-replay": ("replay", "atom"), "atom-gdumb": ("gdumb", "atom")}
#: The Avalanche (or adapter) buffer class of each (strategy family, memory kind): a record's ``memory_policy``.
MEMORY_POLICIES = {("replay", "random"): "ExperienceBalancedBuffer", ("replay", "herding"): "ParametricBuffer",
                   ("replay", "atom"): "ATOMBuffer", ("er_ace", "random"): "ClassBalancedBuffer",
                   ("er_ace", "herding"): "ParametricBuffer", ("er_ace", "atom"): "ATOMBuffer",
                   ("gdumb", "random"): "ClassBalancedBuffer", ("gdumb", "atom"): "ATOMBuffer",
                   ("der", "random"): "ClassBalancedBufferWithLogits", ("der", "herding"): "HerdingLogitsBuffer",
                   ("der", "atom"): "ATOMLogitsBuffer"}


def cell_method(strategy: str, kind: str | None) -> str:
    """The method name of a grid cell: the old name for the six first cells (``replay``/``herding`` ->
    ``"herding"``), else ``"STRATEGY-KIND"`` (e.g. ``"er_ace+ft-atom"``)."""
    for name, cell in LEGACY_CELLS.items():
        if cell == (strategy, kind):
            return name
    return f"{strategy}-{kind}"


#: Every method name the comparison runs: the six first ones, then the new grid cells.
ALL_METHODS = METHODS + tuple(m for m in (cell_method(s, k) for s, k in GRID) if m not in METHODS)


def cell_of(record: dict) -> tuple[str, str | None]:
    """``(strategy, memory_kind)`` of a record: its fields, or (older records) :data:`LEGACY_CELLS` of its method.

    Raises:
        KeyError: a method name that is neither.
    """
    if "strategy" in record:
        return record["strategy"], record.get("memory_kind")
    method = record["method"]
    if method in LEGACY_CELLS:
        return LEGACY_CELLS[method]
    strategy, _, kind = method.rpartition("-")
    return strategy, kind


def memory_policy(strategy: str, kind: str | None) -> str | None:
    """The buffer class name of a cell (None for ``naive``)."""
    return MEMORY_POLICIES.get((strategy.replace("+ft", ""), kind))
