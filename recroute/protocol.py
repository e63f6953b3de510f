"""RouterEval's evaluation protocol, on any dataset.

Two ways to choose candidate pools and splits (``protocol``):

``routereval`` (the default) does what RouterEval's ``get_router_dataset.py``
does, so V_B means what it means in the paper. On the full score matrix the
LLMs are ordered by mean score, weakest first, and only those from the first
with mean above 0.1 up to (not including) the first above 0.9 are kept;
``all_weak`` and ``all_strong`` are the window of m adjacent LLMs with the
best oracle score among the w = max(⌊n/5⌋, m) LLMs at the bottom and at the
top of that range, and ``strong_to_weak`` the best of 1,000 draws of one LLM
from each of m strata of the kept LLMs. The split shuffles each prompt group
with numpy's legacy generator seeded with the split seed and cuts it at
⌊0.8·n⌋ and ⌊0.9·n⌋.

``ranked`` is recroute's earlier protocol: LLMs ranked by mean training
score, ``all_strong`` the m best, ``all_weak`` the m worst, ``strong_to_weak``
m spread evenly from best to worst, a stratified largest-remainder split. A
pool of m at least the number of LLMs is the whole set, evaluated once as
group ``all``.

Either way every router is fitted on the training prompts' outcomes over the
pool and judged on the test prompts.
"""
from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Callable, Iterable, Sequence

import numpy as np

from . import metrics
from .data import RoutingData, Split
from .errors import RecrouteError
from .routers import Queries, Router, make_router

POOL_GROUPS = ("all_strong", "all_weak", "strong_to_weak")
EASY_POOL_SIZES = (3, 5)
HARD_POOL_SIZES = (10, 100, 1000)
METRICS = ("mu", "vr", "vb", "ep", "es")
PROTOCOLS = ("routereval", "ranked")
#: RouterEval's random state: its split and its strong_to_weak draws start from 42.
ROUTEREVAL_SEED = 42
DEFAULT_SEEDS = (42, 43, 44)
#: RouterEval keeps the LLMs whose mean score lies in (KEEP_ABOVE, KEEP_BELOW]: neither hopeless nor saturated.
KEEP_ABOVE, KEEP_BELOW = 0.1, 0.9
STRATUM_DRAWS = 1000


def routereval_pools(scores: np.ndarray, sizes: Iterable[int], groups: Sequence[str] = POOL_GROUPS
                     ) -> tuple[list[tuple[int, str, np.ndarray]], dict[int, str]]:
    """RouterEval's candidate pools on the full prompts × LLMs score matrix, and why any size was skipped.

    Returns ``(m, group, columns)`` for each size and group, the columns in
    RouterEval's order (weakest first, which decides argmax ties), and for
    each pool size skipped because fewer than m LLMs lie between the 0.1 and
    0.9 mean-score bounds, one sentence saying so. Pools do not depend on the
    split.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n = scores.shape[1]
    means = _column_means(scores)
    order = np.argsort(means)  # RouterEval's own call (numpy's default sort): ties fall as it lets them
    ordered = means[order]
    first = _first(ordered > KEEP_ABOVE, n)
    last = min(_first(ordered > KEEP_BELOW, n), int((~np.isnan(means)).sum()))  # LLMs never observed sort last
    kept = max(last - first, 0)
    pools, skipped = [], {}
    for m in sizes:
        if m < 1:
            raise RecrouteError(f"a candidate pool needs at least 1 LLM, got pool size {m}.")
        if kept < m:
            skipped[m] = (f"pool size {m} skipped: only {kept} of {n} LLMs have a mean score above "
                          f"{KEEP_ABOVE} and at most {KEEP_BELOW}.")
            continue
        width = max(n // 5, m)
        for group in groups:
            if group == "all_weak":
                pool = _best_window(scores, order[first:first + width], m)
            elif group == "all_strong":
                pool = _best_window(scores, order[max(last - width, 0):last], m)
            elif group == "strong_to_weak":
                pool = _best_stratified_draw(scores, order[first:last], m)
            else:
                raise RecrouteError(f"unknown candidate group {group!r}; choose from {', '.join(POOL_GROUPS)}.")
            pools.append((m, group, pool))
    return pools, skipped


def _first(flags: np.ndarray, default: int) -> int:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if hits.size else default


def _column_means(scores: np.ndarray) -> np.ndarray:
    """Mean observed score of each column in float64 (NaN for a column never observed)."""
    observed = ~np.isnan(scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(observed, scores, 0).sum(axis=0, dtype=np.float64) / observed.sum(axis=0)


def _oracle_value(block: np.ndarray) -> float:
    """RouterEval's oracle score of a set of LLMs: the mean over prompts of the best score among them
    (prompts that none of them answered do not count)."""
    best = np.where(np.isnan(block), -np.inf, block).max(axis=1)
    best = best[np.isfinite(best)]
    return float(best.mean(dtype=np.float64)) if best.size else -np.inf


def _best_window(scores: np.ndarray, candidates: np.ndarray, m: int) -> np.ndarray:
    """The m adjacent ``candidates`` (in their order) with the best oracle score; the first window wins ties."""
    from scipy.ndimage import maximum_filter1d

    block = np.where(np.isnan(scores[:, candidates]), -np.inf, scores[:, candidates])
    starts = len(candidates) - m + 1
    window_max = maximum_filter1d(block, size=m, axis=1)[:, m // 2:m // 2 + starts]  # column j: max of j..j+m-1
    answered = np.isfinite(window_max)
    values = np.where(answered, window_max, 0).sum(axis=0, dtype=np.float64) / np.maximum(answered.sum(axis=0), 1)
    start = int(np.argmax(values))
    return candidates[start:start + m]


def _best_stratified_draw(scores: np.ndarray, kept: np.ndarray, m: int) -> np.ndarray:
    """RouterEval's strong_to_weak pool: ``kept`` (weakest first) cut into m strata of ⌊k/m⌋ LLMs, the
    first k mod m one larger; 1,000 draws of one LLM per stratum from numpy's legacy generator seeded
    with 42; the first draw with the best oracle score."""
    sizes = np.full(m, len(kept) // m)
    sizes[:len(kept) % m] += 1
    strata = np.split(kept, np.cumsum(sizes)[:-1])
    state = np.random.RandomState(ROUTEREVAL_SEED)
    # stratum[randint(len)] is exactly numpy.random.choice(stratum): the same call on the same stream
    draws = [tuple(stratum[state.randint(len(stratum))] for stratum in strata) for _ in range(STRATUM_DRAWS)]
    value = {draw: _oracle_value(scores[:, list(draw)]) for draw in dict.fromkeys(draws)}
    best = max(range(len(draws)), key=lambda i: (value[draws[i]], -i))
    return np.array(draws[best], dtype=np.intp)


def routereval_split(data: RoutingData, seed: int) -> Split:
    """RouterEval's split: for each prompt group in order of first appearance, its prompts (ascending)
    shuffled by numpy's legacy generator seeded once with ``seed``; the first ⌊0.8·n⌋ train, up to
    ⌊0.9·n⌋ validation, the rest test. Each part keeps that order (it decides neighbour ties)."""
    state = np.random.RandomState(seed)
    labels = data.groups if data.groups is not None else np.zeros(data.n_prompts, dtype="<U1")
    names, first_seen = np.unique(labels, return_index=True)
    parts = ([], [], [])
    for name in names[np.argsort(first_seen)]:
        members = np.flatnonzero(labels == name)
        state.shuffle(members)
        train_end, val_end = int(0.8 * len(members)), int(0.9 * len(members))
        for part, chunk in zip(parts, (members[:train_end], members[train_end:val_end], members[val_end:])):
            part.extend(chunk)
    return Split(*(data.subset(np.array(part, dtype=np.intp)) for part in parts))


def candidate_pool(strength_order: np.ndarray, m: int, group: str) -> np.ndarray:
    """Indices of the m candidate LLMs; ``strength_order`` lists LLMs strongest first."""
    n = len(strength_order)
    if m < 1:
        raise RecrouteError(f"a candidate pool needs at least 1 LLM, got pool size {m}.")
    if m >= n:
        return np.asarray(strength_order)
    if group == "all_strong":
        return strength_order[:m]
    if group == "all_weak":
        return strength_order[n - m:]
    if group == "strong_to_weak":
        return strength_order[np.round(np.linspace(0, n - 1, m)).astype(int)]
    raise RecrouteError(f"unknown candidate group {group!r}; choose from {', '.join(POOL_GROUPS)}.")


def candidate_pools(strength_order: np.ndarray, sizes: Iterable[int], groups: Sequence[str]):
    """(m, group, pool) for every requested size and group; the full set once, as 'all'."""
    n = len(strength_order)
    seen_full = False
    for m in sizes:
        if m >= n:
            if not seen_full:
                seen_full = True
                yield n, "all", candidate_pool(strength_order, n, "all")
            continue
        for group in groups:
            yield m, group, candidate_pool(strength_order, m, group)


def strength_order(train: RoutingData) -> np.ndarray:
    """LLM indices by mean training score, strongest first (ties keep column order)."""
    return np.argsort(-np.nan_to_num(train.model_means(), nan=-np.inf), kind="stable")


def evaluate(
    data: RoutingData,
    routers: Sequence[str] | dict[str, Callable[[], Router]],
    pool_sizes: Iterable[int] = EASY_POOL_SIZES + HARD_POOL_SIZES,
    groups: Sequence[str] = POOL_GROUPS,
    seeds: Iterable[int] = DEFAULT_SEEDS,
    protocol: str = "routereval",
    reference: str | float | None = None,
    side_info: bool = False,
    debias_clip: float | None = None,
    tune: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> list[dict]:
    """One row per (seed, pool, router) with μ_o, V_R, V_B, E_p, the selection entropy and the pool.

    ``protocol`` chooses pools and splits (module docstring): ``routereval``
    as RouterEval's scripts do, or ``ranked``. Pool sizes that the data
    cannot fill under ``routereval`` are skipped, each with one sentence to
    ``notice``. ``routers`` are names for :func:`make_router` or factories
    returning fresh routers. Routers that read prompts need
    ``data.embeddings`` (see :func:`with_embeddings`). ``reference`` is the
    V_R denominator: an LLM name (its mean on the test prompts), a number,
    or by default the LLM with the best mean training score.

    μ_o is the expected score of the router's :meth:`~recroute.Router.policy`:
    exact for random and r_o(p), where RouterEval averages 1,000 draws.
    Learned routers are fitted on the training outcomes of the pool's LLMs
    (the strict protocol); with ``side_info`` each is also fitted on every
    LLM's training outcomes while still routing within the pool (RouterEval
    §4.3 allows such extra data), reported as ``<router>+all``. With
    ``debias_clip`` each learned router is also fitted with inverse-propensity
    weights clipped there (``<router>+ips``) and, separately, rebalanced after
    fitting on the validation prompts (``<router>+rebal``); see
    :mod:`recroute.routers.debias`. With ``tune``,
    a router's ``param_grid`` settings are each fitted and the one with the
    best μ on the validation prompts is kept: the test prompts never choose.
    """
    if protocol not in PROTOCOLS:
        raise RecrouteError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}.")
    factories = routers if isinstance(routers, dict) else {name: _factory(name) for name in routers}
    for name, factory in factories.items():
        if factory().needs_embeddings and data.embeddings is None:
            raise RecrouteError(f"{data.source}: router {name!r} needs prompt embeddings; none were given.")
    seeds = _seed_list(seeds)
    variants = [(name, factory, "pool", False) for name, factory in factories.items()]
    if side_info:
        variants += [(f"{name}+all", factory, "all", False) for name, factory in factories.items()
                     if factory().needs_embeddings]
    if debias_clip is not None:
        learned = {name: factory for name, factory in factories.items() if "debias_clip" in factory().get_params()}
        variants += [(f"{name}+ips", _with_params(factory, debias_clip=debias_clip), "pool", False)
                     for name, factory in learned.items()]
        variants += [(f"{name}+rebal", factory, "pool", True) for name, factory in learned.items()]
    pool_sizes = list(pool_sizes)
    if protocol == "routereval":
        fixed_pools, skipped = routereval_pools(data.scores, pool_sizes, groups)
        if not fixed_pools:  # the smallest pool size says why
            raise RecrouteError(f"{data.source}: no candidate pool to evaluate: {skipped[min(skipped)]}")
        for sentence in skipped.values():
            if notice:
                notice(f"{data.source}: {sentence}")
    n_pools = len(fixed_pools) if protocol == "routereval" else \
        len(list(candidate_pools(np.arange(data.n_models), pool_sizes, groups)))
    total, done, rows = len(seeds) * n_pools * len(variants), 0, []
    for seed in seeds:
        if protocol == "routereval":
            split, pools = routereval_split(data, seed), fixed_pools
        else:
            split = data.split((0.8, 0.1, 0.1), seed=seed)
            pools = candidate_pools(strength_order(split.train), pool_sizes, groups)
        best_trained = strength_order(split.train)[0]
        ref_column = best_trained if reference is None or _is_number(reference) else data.model_index([reference])[0]
        for m, group, pool in pools:
            names = list(data.models[pool])
            train = split.train.subset(models=pool)
            judged = _judged(split.test, pool)
            test = split.test.subset(prompts=judged, models=pool)
            queries = Queries.of(test)
            ref_score = float(reference) if _is_number(reference) else \
                float(np.nanmean(split.test.scores[judged, ref_column]))
            for router_name, factory, train_on, rebalance in variants:
                router = fit_tuned(factory, split.train if train_on == "all" else train, split.val, names,
                                   seed=seed, tune=tune)
                if rebalance:
                    router.rebalance(split.val, names)
                scores = router.score(queries, names)
                policy = router.policy(queries, names)
                mu = metrics.mu(test.scores, policy)
                rows.append({
                    "dataset": data.source, "protocol": protocol, "m": m, "group": group, "router": router_name,
                    "seed": seed, "mu": mu, "vr": metrics.vr(mu, ref_score), "vb": metrics.vb(test.scores, policy),
                    "ep": metrics.prediction_entropy(scores), "es": metrics.selection_entropy(policy, len(names)),
                    "n_test": test.n_prompts, "train_on": train_on, "pool": names, "params": router.get_params(),
                    **({"chosen": router.chosen_} if hasattr(router, "chosen_") else {}),
                })
                done += 1
                if progress:
                    progress(done, total, f"seed {seed}, m={m} {group}, {router_name}")
    return rows


def summarize(rows: list[dict], by: Sequence[str] = ("router", "m")) -> list[dict]:
    """Mean of each metric over the other keys (groups, seeds), with the spread across seeds.

    ``<metric>_std`` is the standard deviation over seeds of the per-seed means,
    so it measures how much a conclusion depends on the split.
    """
    keys = list(dict.fromkeys(tuple(r[k] for k in by) for r in rows))
    out = []
    for key in keys:
        members = [r for r in rows if tuple(r[k] for k in by) == key]
        summary = dict(zip(by, key))
        seeds = sorted({r["seed"] for r in members})
        for metric in METRICS:
            per_seed = [np.mean([r[metric] for r in members if r["seed"] == s]) for s in seeds]
            summary[metric] = float(np.mean(per_seed))
            summary[f"{metric}_std"] = float(np.std(per_seed))
        summary["seeds"] = len(seeds)
        out.append(summary)
    return out


def _seed_list(seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise RecrouteError("no seeds: evaluation needs at least one random split.")
    return seeds


def _factory(spec: str) -> Callable[[], Router]:
    make_router(spec)  # fail early on a bad name
    return lambda: make_router(spec)


def _with_params(factory: Callable[[], Router], **params) -> Callable[[], Router]:
    return lambda: _set_params(factory(), params)


def _set_params(router: Router, params: dict) -> Router:
    for name, value in params.items():
        setattr(router, name, value)
    return router


def fit_tuned(factory: Callable[[], Router], train: RoutingData, val: RoutingData, models: Sequence[str],
              seed: int = 0, tune: bool = True, objective: Callable[[np.ndarray, np.ndarray], float] | None = None
              ) -> Router:
    """Fit a fresh router; with ``tune``, try each setting of its ``param_grid``, keep the best on ``val``.

    A setting is judged by ``objective(scores, truth)`` on ``val``'s prompts
    (those observed for every one of ``models``), by default μ of routing to
    the best-scored LLM; ties keep the earlier setting. Without a grid (or
    validation prompts) this is a plain fit. A router that chooses its own
    settings on its training prompts (``trains_on_validation``) fits on the
    training and validation prompts together: for it they are all training
    prompts, and only the test prompts judge.
    """
    if factory().trains_on_validation and val.n_prompts:
        both = RoutingData.concat([train, val.subset(models=list(train.models))], train.source)
        return _seeded(factory(), seed).fit(both)
    val = val.subset(prompts=_judged(val, val.model_index(list(models))), models=list(models))
    grid = getattr(factory(), "param_grid", None) if tune and val.n_prompts else None
    if not grid:
        return _seeded(factory(), seed).fit(train)
    objective = objective or (lambda scores, truth: metrics.mu(truth, np.argmax(scores, axis=1)))
    best, best_value = None, -np.inf
    for values in itertools.product(*grid.values()):
        router = _set_params(_seeded(factory(), seed), dict(zip(grid, values)))
        value = objective(router.fit(train).score(Queries.of(val), models), val.scores)
        if value > best_value:
            best, best_value = router, value
    return best


def _pair_apgr(truth: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """The pair protocol's tuning objective: APGR on prompts whose (strong, weak) outcomes are ``truth``,
    read from scores over :data:`PAIR_LABELS`."""
    weak, strong = truth[:, 1].mean(), truth[:, 0].mean()

    def objective(scores: np.ndarray, _labels: np.ndarray) -> float:
        fractions, quality = metrics.strong_call_curve(scores[:, 1] - scores[:, 0], truth[:, 0], truth[:, 1])
        return metrics.apgr(fractions, quality, weak, strong) if strong != weak else 0.0
    return objective


def _judged(data: RoutingData, columns: np.ndarray) -> np.ndarray:
    """Prompts observed for every one of ``columns``: only those can be judged fairly."""
    return data.observed[:, columns].all(axis=1)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seeded(router: Router, seed: int) -> Router:
    """Give a router with randomness the evaluation seed, so each split draws anew."""
    return _set_params(router, {"seed": seed}) if "seed" in router.get_params() else router


def with_embeddings(data: RoutingData, progress: bool = False, encoder=None) -> RoutingData:
    """``data`` with prompt embeddings attached: its own when they stand for ``encoder``'s
    (default: a new :class:`recroute.embed.Encoder`), else encoded (and cached) and recorded
    as that encoder's (``embedding_model``); see :func:`recroute.embed.prompt_embeddings`."""
    from .embed import Encoder, prompt_embeddings

    encoder = encoder if encoder is not None else Encoder()
    vectors = prompt_embeddings(data, encoder, progress=progress)
    if vectors is data.embeddings:
        return data
    return replace(data, embeddings=vectors, embedding_model=encoder.settings())


def scaling_curve(data: RoutingData, ps: Sequence[float] = (0.0, 0.3, 0.5, 0.7, 1.0),
                  sizes: Sequence[int] | None = None, n_pools: int = 100, seed: int = 0) -> dict:
    """RouterEval's Figure 2: expected μ of r_o(p) against pool size m.

    For each m, ``n_pools`` random pools of m LLMs; for each pool the expected
    score of r_o(p) is exact, p·mean(best in pool) + (1−p)·mean(pool average),
    so only the pool draw is random. Prompts are those observed for every LLM.
    Returns ``{"sizes", "ps", "ro": (len(ps), len(sizes)), "bsm": (len(sizes),)}``
    with ``bsm`` the mean best single model of the same pools.
    """
    if n_pools < 1:
        raise RecrouteError(f"the scaling curve needs at least 1 pool per size, got {n_pools}.")
    scores = data.scores[data.observed.all(axis=1)]
    if len(scores) == 0:
        raise RecrouteError(f"{data.source}: no prompt has an outcome for every LLM.")
    n = data.n_models
    sizes = list(range(1, n + 1)) if sizes is None else [m for m in sizes if 1 <= m <= n]
    rng = np.random.default_rng(seed)
    ro = np.zeros((len(ps), len(sizes)))
    bsm = np.zeros(len(sizes))
    for j, m in enumerate(sizes):
        best, average, single = [], [], []
        for _ in range(n_pools):
            pool = scores[:, rng.choice(n, size=m, replace=False)]
            best.append(pool.max(axis=1).mean())
            average.append(pool.mean())
            single.append(pool.mean(axis=0).max())
        for i, p in enumerate(ps):
            ro[i, j] = p * np.mean(best) + (1 - p) * np.mean(average)
        bsm[j] = np.mean(single)
    return {"sizes": sizes, "ps": list(ps), "ro": ro, "bsm": bsm}


CALL_GRID = np.linspace(0.0, 1.0, 101)
PAIR_LABELS = ("weak_ok", "strong_needed")


def check_pair_options(tolerance: float = 0.0, strong_fraction: float = 0.3) -> None:
    """Refuse a negative tolerance or a strong fraction outside [0, 1] before any work."""
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise RecrouteError(f"the tolerance must be a non-negative number, got {tolerance}.")
    if not 0 <= strong_fraction <= 1:
        raise RecrouteError(f"the strong fraction must be between 0 and 1, got {strong_fraction}.")


def pair_labels(data: RoutingData, strong: str, weak: str, tolerance: float = 0.0) -> RoutingData:
    """Hybrid LLM's routing target for a strong/weak pair, as a two-column outcome matrix.

    ``weak_ok`` is 1 where the weak LLM scores within ``tolerance`` of the
    strong one (weak >= strong - t; t = 0 is RouteLLM's "weak wins or ties"),
    and ``strong_needed`` is its complement. Any router fitted on these two
    columns scores P(weak is good enough) and its opposite, so ranking
    routers (BPR, WARP) get a positive on every prompt.
    """
    check_pair_options(tolerance=tolerance)
    s, w = (data.scores[:, data.model_index([name])[0]] for name in (strong, weak))
    ok = (w >= s - tolerance).astype(np.float32)
    ok[np.isnan(s) | np.isnan(w)] = np.nan
    return replace(data, scores=np.stack([ok, 1 - ok], axis=1), models=np.array(PAIR_LABELS), cost=None,
                   price=None)


def strong_benefit(router: Router, queries: Queries) -> np.ndarray:
    """A pair router's reason to call the strong LLM: score(strong_needed) - score(weak_ok)."""
    scores = router.score(queries, list(PAIR_LABELS))
    return scores[:, 1] - scores[:, 0]


def strong_threshold(benefit: np.ndarray, strong_fraction: float) -> float:
    """The benefit above which a prompt goes to the strong LLM, chosen so that the share of
    these prompts sent there is as close as ties allow to ``strong_fraction``."""
    check_pair_options(strong_fraction=strong_fraction)
    benefit = np.asarray(benefit, dtype=np.float64)
    candidates = np.r_[-np.inf, np.unique(benefit)]  # "> the largest value" sends nothing
    shares = np.array([(benefit > t).mean() for t in candidates]) if benefit.size else np.zeros(1)
    return float(candidates[np.argmin(np.abs(shares - strong_fraction))])


def evaluate_pair(data: RoutingData, routers: Sequence[str] | dict[str, Callable[[], Router]],
                  strong: str | None = None, weak: str | None = None, seeds: Iterable[int] = (0, 1, 2),
                  tolerance: float = 0.0, strong_fraction: float = 0.3,
                  progress: Callable[[int, int, str], None] | None = None) -> tuple[list[dict], dict]:
    """RouteLLM's strong/weak evaluation: APGR and CPT(20/50/80%) per router and seed.

    Each router is fitted on :func:`pair_labels` (tolerance ``tolerance``) of
    the training prompts, tuned for APGR on the validation prompts, and
    ranks test prompts by :func:`strong_benefit`. A threshold calibrated on
    the validation prompts to send ``strong_fraction`` of them to the strong
    LLM is then applied to the test prompts: the rows report the share that
    went there (``strong_share``) and the PGR it bought (``pgr_at``).
    Returns the rows and, per router, the quality curve on a 0..1
    strong-call grid averaged over seeds (plus 'weak' and 'strong' levels).
    """
    factories = routers if isinstance(routers, dict) else {name: _factory(name) for name in routers}
    seeds = _seed_list(seeds)
    check_pair_options(tolerance, strong_fraction)
    rows, curves, levels = [], {name: [] for name in factories}, []
    total, done = len(seeds) * len(factories), 0
    for seed in seeds:
        split = data.split((0.8, 0.1, 0.1), seed=seed)
        order = strength_order(split.train)
        pair = [strong or split.train.models[order[0]], weak or split.train.models[order[-1]]]
        if pair[0] == pair[1]:
            raise RecrouteError(f"{data.source}: the strong and the weak LLM must differ (both {pair[0]!r}).")
        judged = [part.subset(prompts=_judged(part, part.model_index(pair)), models=pair)
                  for part in (split.train, split.val, split.test)]
        train, val, test = (pair_labels(part, *pair, tolerance) for part in judged)
        val_truth, truth = judged[1].scores, judged[2].scores
        strong_q, weak_q = (float(truth[:, j].mean()) for j in (0, 1))
        levels.append((strong_q, weak_q))
        for name, factory in factories.items():
            router = fit_tuned(factory, train, val, list(PAIR_LABELS), seed=seed,
                               objective=_pair_apgr(val_truth))
            threshold = strong_threshold(strong_benefit(router, Queries.of(val)), strong_fraction)
            benefit = strong_benefit(router, Queries.of(test))
            fractions, quality = metrics.strong_call_curve(benefit, truth[:, 0], truth[:, 1])
            curves[name].append(np.interp(CALL_GRID, fractions, quality))
            calls = benefit > threshold
            row = {"dataset": data.source, "router": name, "seed": seed, "strong": pair[0], "weak": pair[1],
                   "strong_mu": strong_q, "weak_mu": weak_q, "tolerance": tolerance,
                   "apgr": metrics.apgr(fractions, quality, weak_q, strong_q), "n_test": test.n_prompts,
                   "strong_fraction": strong_fraction, "strong_share": float(calls.mean()),
                   "pgr_at": metrics.pgr(np.where(calls, truth[:, 0], truth[:, 1]).mean(), weak_q, strong_q)}
            for x in (20, 50, 80):
                row[f"cpt{x}"] = metrics.cpt(fractions, quality, weak_q, strong_q, x)
            rows.append(row)
            done += 1
            if progress:
                progress(done, total, f"seed {seed}, {name}")
    mean_curves = {name: (CALL_GRID, np.mean(c, axis=0)) for name, c in curves.items()}
    strong_q, weak_q = np.mean(levels, axis=0)
    return rows, {"curves": mean_curves, "strong": float(strong_q), "weak": float(weak_q), "pair": pair}


def cost_weights(scores: np.ndarray, costs: np.ndarray, n: int = 40) -> np.ndarray:
    """λ values that trace a router's whole quality-vs-cost curve, 0 first.

    The choice for a prompt changes where λ equals (s_i - s_j)/(c_i - c_j) for
    a better-scored, dearer LLM i and a cheaper j; the grid takes quantiles of
    these break-even points (so each step moves about as many prompts) and
    ends beyond the largest, where every prompt goes to its cheapest LLM.
    """
    ds = scores[:, :, None] - scores[:, None, :]
    dc = costs[:, :, None] - costs[:, None, :]
    ratios = (ds / np.where(dc > 0, dc, np.inf))[(ds > 0) & (dc > 0)]
    if ratios.size == 0:
        return np.zeros(1)
    inner = np.quantile(ratios, np.linspace(0, 1, n)[1:-1])
    return np.unique(np.r_[0.0, inner, 2 * ratios.max()])


def cost_quality(data: RoutingData, routers: Sequence[str] | dict[str, Callable[[], Router]],
                 seeds: Iterable[int] = (0, 1, 2), models: Sequence[str] | None = None, output_tokens: int = 256,
                 n_weights: int = 40, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Quality against cost per query as the cost weight λ sweeps, per router and seed.

    For each seed's split, each router is fitted (and tuned) on the training
    prompts over ``models`` (default all), a :class:`~recroute.cost.CostModel`
    learns what a query costs on each LLM, and test prompts go to
    argmax(P(good) − λ·predicted cost) for every λ of :func:`cost_weights`,
    P(good) being the router's :meth:`~recroute.Router.probability`. A
    choice is judged by its true score and its realised cost (the recorded
    cost, or the price-based estimate where the data has only prices). Each
    row carries the curve and its AIQ over the cost range of the single LLMs;
    for two LLMs also APGR and CPT(50%/80%), with the dearer LLM as the strong
    one. Also returns every single LLM's point and the oracle's frontier (the
    oracle knows true scores and costs), averaged over seeds.
    """
    from .cost import CostModel, choose, realised_cost, require_costs

    factories = routers if isinstance(routers, dict) else {name: _factory(name) for name in routers}
    seeds = _seed_list(seeds)
    names = list(data.models) if models is None else list(models)
    columns = data.model_index(names)
    require_costs(data)
    rows, singles, total, done = [], [], len(seeds) * len(factories), 0
    for seed in seeds:
        split = data.split((0.8, 0.1, 0.1), seed=seed)
        train = split.train.subset(models=columns)
        test = split.test.subset(prompts=_judged(split.test, columns), models=columns)
        truth, spent = test.scores.astype(np.float64), realised_cost(test, output_tokens)
        predicted = CostModel(output_tokens).fit(train).predict(test.prompts) if test.prompts is not None else \
            np.broadcast_to(np.nanmean(realised_cost(train, output_tokens), axis=0), truth.shape)
        single_cost, single_quality = spent.mean(axis=0), truth.mean(axis=0)
        singles.append((single_cost, single_quality))
        cost_range = (float(single_cost.min()), float(single_cost.max()))
        curves = {"oracle": (truth, spent, spent)}
        for name, factory in factories.items():
            router = fit_tuned(factory, train, split.val, names, seed=seed)
            curves[name] = (router.probability(Queries.of(test), names).astype(np.float64), predicted, spent)
            done += 1
            if progress:
                progress(done, total, f"seed {seed}, {name}")
        dearer = int(np.argmax(single_cost))
        for name, (scores, believed, paid) in curves.items():
            picks = [choose(scores, believed, w) for w in cost_weights(scores, believed, n_weights)]
            cost = np.array([np.take_along_axis(paid, c[:, None], 1).mean() for c in picks])
            quality = np.array([np.take_along_axis(truth, c[:, None], 1).mean() for c in picks])
            row = {"dataset": data.source, "router": name, "seed": seed, "cost": cost.tolist(),
                   "quality": quality.tolist(), "aiq": metrics.aiq(cost, quality, cost_range)
                   if cost_range[1] > cost_range[0] else float(quality.max()), "n_test": test.n_prompts}
            if len(names) == 2:  # NaN where the two LLMs tie on this split: no gap to recover
                row.update(apgr=np.nan, cpt50=np.nan, cpt80=np.nan)
                weak_q, strong_q = single_quality[1 - dearer], single_quality[dearer]
                if weak_q != strong_q:
                    fractions, curve = metrics.strong_call_curve(scores[:, dearer] - scores[:, 1 - dearer],
                                                                 truth[:, dearer], truth[:, 1 - dearer])
                    row["apgr"] = metrics.apgr(fractions, curve, weak_q, strong_q)
                    for x in (50, 80):
                        row[f"cpt{x}"] = metrics.cpt(fractions, curve, weak_q, strong_q, x)
            rows.append(row)
    cost, quality = np.mean(singles, axis=0)
    return {"rows": rows, "models": names, "single_cost": cost, "single_quality": quality}
