"""How many candidates a search ranks: the one widening rule.

The stages after the dense ranking can drop candidates (minimum score, collapsing) or
reorder them (hub correction, fusion with the words), so a search ranks a pool larger than
the page and, when the page still comes out short, doubles the pool until it is full or
both signals have nothing more to give.
"""

MIN_POOL = 50
FUSION_POOL = 100  # candidates beyond the page from each signal: fusion lifts some from below


def size(previous: int | None, *, wanted: int, drops_hits: bool, fused: bool, kept: int,
         exhausted: bool) -> int | None:
    """The pool to rank next for a page needing `wanted` hits, or None when the search is
    done. First (`previous` None): just the page when nothing drops or reorders hits
    (`drops_hits`), `wanted + FUSION_POOL` when the words take part (`fused`), else 4x the
    page, at least MIN_POOL. Then, after a pool that left `kept` hits: done when the page
    is full or no signal had more candidates than the pool (`exhausted`), else twice it."""
    if previous is None:
        if fused:
            return wanted + FUSION_POOL
        return max(MIN_POOL, 4 * wanted) if drops_hits else wanted
    return None if kept >= wanted or exhausted else 2 * previous
