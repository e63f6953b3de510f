"""Pin every metric in recroute.metrics to hand-computed values on tiny inputs."""

import math

import numpy as np
import pytest

from recroute import metrics as M
from recroute.errors import RecrouteError

approx = pytest.approx

# 2 prompts x 3 LLMs, shared by the RouterEval tests.
TRUTH = np.array([[1.0, 0.0, 0.5],
                  [0.0, 1.0, 0.2]])


# ---------------------------------------------------------------- RouterEval

def test_mu_is_mean_score_of_chosen_columns():
    # prompt 0 -> col 2 (0.5), prompt 1 -> col 1 (1.0): (0.5 + 1.0) / 2 = 0.75
    assert M.mu(TRUTH, np.array([2, 1])) == approx(0.75)
    # oracle: (1.0 + 1.0) / 2 = 1.0 ; worst: (0.0 + 0.0) / 2 = 0.0
    assert M.mu(TRUTH, [0, 1]) == approx(1.0)
    assert M.mu(TRUTH, [1, 0]) == approx(0.0)


def test_vr_is_ratio_to_reference():
    assert M.vr(0.75, 0.6) == approx(1.25)  # 0.75 / 0.6
    with pytest.raises(ValueError, match="reference"):
        M.vr(0.75, 0.0)


def test_vb_divides_by_best_single_model():
    # column means: (1+0)/2 = 0.5, (0+1)/2 = 0.5, (0.5+0.2)/2 = 0.35 -> best 0.5
    # mu = 0.75 -> V_B = 0.75 / 0.5 = 1.5
    assert M.vb(TRUTH, [2, 1]) == approx(1.5)
    # always choosing col 0 equals the best single model: 0.5 / 0.5 = 1
    assert M.vb(TRUTH, [0, 0]) == approx(1.0)
    with pytest.raises(ValueError, match="0"):
        M.vb(np.zeros((2, 3)), [0, 1])


def test_prediction_entropy():
    # row 0: softmax(0, 0) = (1/2, 1/2) -> 1 bit
    # row 1: softmax(0, ln 3) = (1/4, 3/4) -> 0.25*2 + 0.75*log2(4/3) = 0.5 + 0.311278 = 0.811278
    # mean = (1 + 0.8112781244591328) / 2 = 0.9056390622295664
    scores = np.array([[0.0, 0.0], [0.0, math.log(3)]])
    assert M.prediction_entropy(scores) == approx(0.9056390622295664)


def test_prediction_entropy_extremes_and_stability():
    # uniform over 4 -> log2(4) = 2 bits, whatever the (huge) shared value
    assert M.prediction_entropy(np.full((3, 4), 1e6)) == approx(2.0)
    # one overwhelming score -> softmax is one-hot -> 0 bits, no overflow / NaN
    assert M.prediction_entropy(np.array([[1000.0, 0.0, -1000.0]])) == approx(0.0, abs=1e-12)
    # shift invariance: softmax(s + c) == softmax(s)
    s = np.array([[0.1, 0.7, 0.2]])
    assert M.prediction_entropy(s + 500) == approx(M.prediction_entropy(s))


def test_selection_entropy():
    # collapse onto one LLM -> 0 bits
    assert M.selection_entropy([0, 0, 0, 0], 3) == 0.0
    # uniform over 4 LLMs -> log2(4) = 2 bits
    assert M.selection_entropy([0, 1, 2, 3], 4) == approx(2.0)
    # frequencies (2/4, 1/4, 1/4): 0.5*1 + 0.25*2 + 0.25*2 = 1.5 bits
    assert M.selection_entropy(np.array([0, 0, 1, 2]), 3) == approx(1.5)
    # unused columns do not change it (0 log 0 = 0): same as above with m = 5
    assert M.selection_entropy([0, 0, 1, 2], 5) == approx(1.5)


def test_metrics_of_a_randomised_choice_are_its_expectation():
    truth = np.array([[1.0, 0.0], [0.0, 1.0]])
    policy = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert M.mu(truth, policy) == approx((0.5 + 0.75) / 2)
    assert M.vb(truth, policy) == approx(0.625 / 0.5)
    # chosen shares: (0.5 + 0.25) / 2 = 0.375 and 0.625
    assert M.selection_entropy(policy, 2) == approx(-(0.375 * np.log2(0.375) + 0.625 * np.log2(0.625)))
    # a one-hot policy is the same as the indices it puts its mass on
    assert M.mu(truth, np.eye(2)[[1, 1]]) == M.mu(truth, [1, 1]) == 0.5
    assert M.selection_entropy(np.eye(5)[[0, 0, 1, 2]], 5) == M.selection_entropy([0, 0, 1, 2], 5)


@pytest.mark.parametrize("policy, fragment", [
    ([[0.5, 0.6], [0.5, 0.5]], "summing to 1"),
    ([[1.5, -0.5], [0.5, 0.5]], "summing to 1"),
    ([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], "shape"),
    ([[1.0, 0.0]], "shape"),
    ([[np.nan, 1.0], [0.5, 0.5]], "summing to 1"),
])
def test_bad_choice_policies_are_refused(policy, fragment):
    with pytest.raises(ValueError, match=fragment):
        M.mu(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array(policy))


def test_routereval_validation():
    with pytest.raises(ValueError, match="2-D"):
        M.mu(np.array([1.0, 0.0]), [0])
    with pytest.raises(ValueError, match="shape"):
        M.mu(TRUTH, [0, 1, 2])  # 3 choices for 2 prompts
    with pytest.raises(ValueError, match="outside"):
        M.mu(TRUTH, [0, 3])
    with pytest.raises(ValueError, match="outside"):
        M.mu(TRUTH, [-1, 0])
    with pytest.raises(ValueError, match="integer"):
        M.mu(TRUTH, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        M.mu(np.array([[np.nan, 1.0]]), [0])
    with pytest.raises(ValueError, match="empty"):
        M.mu(np.zeros((0, 3)), np.array([], dtype=int))
    with pytest.raises(ValueError, match="outside"):
        M.selection_entropy([0, 3], 3)
    with pytest.raises(ValueError, match="positive integer"):
        M.selection_entropy([0], 0)
    with pytest.raises(ValueError, match="1-D"):
        M.selection_entropy([[[0, 1]]], 2)
    with pytest.raises(ValueError, match="2-D"):
        M.prediction_entropy(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        M.prediction_entropy(np.array([[0.1, np.inf]]))


# ---------------------------------------------------------------- RouteLLM

def test_strong_call_curve():
    benefit = np.array([0.9, 0.1, 0.5, 0.5])
    strong = np.array([1.0, 0.0, 1.0, 1.0])
    weak = np.array([0.0, 1.0, 0.0, 1.0])
    # order by -benefit, stable: prompts 0, 2, 3, 1 (the 0.5 tie keeps 2 before 3)
    # k=0: weak all            (0+1+0+1)/4 = 0.5
    # k=1: S{0}   W{2,3,1}     (1 + 0+1+1)/4 = 0.75
    # k=2: S{0,2} W{3,1}       (1+1 + 1+1)/4 = 1.0
    # k=3: S{0,2,3} W{1}       (1+1+1 + 1)/4 = 1.0
    # k=4: strong all          (1+0+1+1)/4 = 0.75
    f, q = M.strong_call_curve(benefit, strong, weak)
    assert f == approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert q == approx([0.5, 0.75, 1.0, 1.0, 0.75])
    # end points are exactly the weak and strong means
    assert q[0] == np.mean(weak) and q[-1] == np.mean(strong)


def test_strong_call_curve_ties_are_stable():
    # equal benefit: the earlier prompt (0) goes to strong first -> (1 + 0)/2 = 0.5
    f, q = M.strong_call_curve([0.5, 0.5], [1.0, 0.0], [0.0, 0.0])
    assert q == approx([0.0, 0.5, 0.5])


def test_strong_call_curve_validation():
    with pytest.raises(ValueError, match="shape"):
        M.strong_call_curve([0.1, 0.2], [1.0, 0.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="1-D"):
        M.strong_call_curve([[0.1]], [[1.0]], [[0.0]])


def test_pgr():
    # (0.7 - 0.5) / (0.9 - 0.5) = 0.5, scalar in -> float out
    assert M.pgr(0.7, 0.5, 0.9) == approx(0.5)
    assert isinstance(M.pgr(0.7, 0.5, 0.9), float)
    # elementwise: (q - 0.25) / 0.5 for q = 0.25, 0.5, 0.75, 1.0 -> 0, 0.5, 1, 1.5
    assert M.pgr(np.array([0.25, 0.5, 0.75, 1.0]), 0.25, 0.75) == approx([0.0, 0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="equal"):
        M.pgr(0.5, 0.6, 0.6)


# prompts: strong = (1,1,1,0), weak = (0,0,1,0), benefit = (0.9,0.2,0.5,0.7)
# order 0,3,2,1; weak mean 1/4, strong mean 3/4
# k=0: 1/4; k=1: S{0}=1 + W{3,2,1}=1 -> 2/4; k=2: S{0,3}=1 + W{2,1}=1 -> 2/4;
# k=3: S{0,3,2}=2 + W{1}=0 -> 2/4; k=4: 3/4
# PGR = (q - 0.25) / 0.5 = (0, 0.5, 0.5, 0.5, 1)
PAIR = dict(strong_benefit=[0.9, 0.2, 0.5, 0.7], strong=[1.0, 1.0, 1.0, 0.0], weak=[0.0, 0.0, 1.0, 0.0])


def test_pair_curve_apgr_cpt():
    f, q = M.strong_call_curve(**PAIR)
    assert q == approx([0.25, 0.5, 0.5, 0.5, 0.75])
    # trapezoids of width 0.25: (0+.5)/2 + (.5+.5)/2 + (.5+.5)/2 + (.5+1)/2 = 2.0 -> 0.25 * 2.0 = 0.5
    assert M.apgr(f, q, 0.25, 0.75) == approx(0.5)
    assert M.cpt(f, q, 0.25, 0.75, 50) == approx(0.25)   # first PGR >= 0.5 at k=1
    assert M.cpt(f, q, 0.25, 0.75, 60) == approx(1.0)    # only PGR(1) = 1 >= 0.6
    assert M.cpt(f, q, 0.25, 0.75, 100) == approx(1.0)
    assert M.cpt(f, q, 0.25, 0.75, 0) == 0.0
    assert math.isnan(M.cpt(f, q, 0.25, 0.75, 150))    # PGR never reaches 1.5


def test_perfect_and_random_like_apgr():
    # oracle-like curve: PGR 0 -> 1 at the first quarter, then 1: area
    # 0.25*(0+1)/2 + 0.75*1 = 0.125 + 0.75 = 0.875
    f = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert M.apgr(f, [0.0, 1.0, 1.0, 1.0, 1.0], 0.0, 1.0) == approx(0.875)
    # straight line from weak to strong (random routing in expectation) -> 0.5
    assert M.apgr(f, [0.0, 0.25, 0.5, 0.75, 1.0], 0.0, 1.0) == approx(0.5)


def test_cpt_exact_hit_despite_float_roundoff():
    # (0.7 - 0.5) / (0.9 - 0.5) evaluates to 0.4999999999999999 in floats; still CPT(50%) = 0.5
    f, q = [0.0, 0.5, 1.0], [0.5, 0.7, 0.9]
    assert M.cpt(f, q, 0.5, 0.9, 50) == approx(0.5)


def test_cpt_returns_one_only_if_reached_there():
    # PGR = (0, 0.25, 0.75): 50% first reached at fraction 1; 100% never
    f, q = [0.0, 0.5, 1.0], [0.5, 0.6, 0.8]
    assert M.cpt(f, q, 0.5, 0.9, 50) == 1.0
    assert math.isnan(M.cpt(f, q, 0.5, 0.9, 100))


def test_apgr_cpt_validation():
    with pytest.raises(ValueError, match="0 to 1"):
        M.apgr([0.1, 1.0], [0.5, 0.9], 0.5, 0.9)
    with pytest.raises(ValueError, match="0 to 1"):
        M.apgr([0.0, 0.5], [0.5, 0.9], 0.5, 0.9)
    with pytest.raises(ValueError, match="non-decreasing"):
        M.apgr([0.0, 0.6, 0.4, 1.0], [0.5, 0.6, 0.7, 0.9], 0.5, 0.9)
    with pytest.raises(ValueError, match="shape"):
        M.cpt([0.0, 1.0], [0.5, 0.7, 0.9], 0.5, 0.9, 50)
    with pytest.raises(ValueError, match="equal"):
        M.apgr([0.0, 1.0], [0.5, 0.5], 0.5, 0.5)


# ---------------------------------------------------------------- ranking

NDCG_TRUTH = np.array([[1.0, 0.0, 0.5],
                       [0.0, 1.0, 0.0],
                       [0.0, 0.0, 0.0]])   # row 2: ideal DCG 0 -> skipped
NDCG_SCORES = np.array([[0.1, 0.9, 0.5],   # ranks cols 1, 2, 0
                        [0.0, 1.0, 0.0],   # ranks col 1 first (perfect)
                        [0.3, 0.2, 0.1]])


def test_ndcg_at_k():
    # row 0, k=2: DCG = 0/log2(2) + 0.5/log2(3) = 0.31546487678572877
    #             IDCG = 1/log2(2) + 0.5/log2(3) = 1.3154648767857289
    #             NDCG = 0.23981246656813146 ; row 1: 1.0
    # mean = (0.23981246656813146 + 1) / 2 = 0.6199062332840657
    assert M.ndcg_at_k(NDCG_TRUTH, NDCG_SCORES, 2) == approx(0.6199062332840657)
    # k=1: row 0 top is col 1 (gain 0) -> 0 ; row 1 -> 1 ; mean 0.5
    assert M.ndcg_at_k(NDCG_TRUTH, NDCG_SCORES, 1) == approx(0.5)
    # k=3 (and k > m, clamped to 3): row 0 DCG = 0 + 0.5/log2(3) + 1/log2(4) = 0.8154648767857288
    # / IDCG 1.3154648767857289 = 0.6199062332840657 ; mean with 1 -> 0.8099531166420328
    assert M.ndcg_at_k(NDCG_TRUTH, NDCG_SCORES, 3) == approx(0.8099531166420328)
    assert M.ndcg_at_k(NDCG_TRUTH, NDCG_SCORES, 10) == approx(0.8099531166420328)


def test_ndcg_edge_cases():
    assert math.isnan(M.ndcg_at_k(np.zeros((2, 3)), np.ones((2, 3)), 2))
    # tied scores: stable order puts col 0 (gain 0) first -> NDCG@1 = 0
    assert M.ndcg_at_k([[0.0, 1.0]], [[0.5, 0.5]], 1) == 0.0
    with pytest.raises(ValueError, match="shape"):
        M.ndcg_at_k(np.ones((2, 3)), np.ones((3, 2)), 1)
    with pytest.raises(ValueError, match="positive integer"):
        M.ndcg_at_k(np.ones((2, 3)), np.ones((2, 3)), 0)
    with pytest.raises(ValueError, match="positive integer"):
        M.ndcg_at_k(np.ones((2, 3)), np.ones((2, 3)), 1.5)


RECALL_TRUTH = np.array([[1.0, 0.0, 1.0],    # B = {0, 2}
                         [0.2, 0.8, 0.8],    # B = {1, 2}
                         [0.0, 0.0, 0.0],    # max 0 -> skipped
                         [0.3, 0.9, 0.1]])   # B = {1}
RECALL_SCORES = np.array([[0.9, 0.8, 0.1],   # ranks 0, 1, 2
                          [0.9, 0.1, 0.2],   # ranks 0, 2, 1
                          [0.5, 0.4, 0.3],
                          [0.1, 0.2, 0.3]])  # ranks 2, 1, 0


def test_recall_at_k():
    # k=1: row0 {0}∩B=1 / min(2,1)=1 -> 1 ; row1 {0} -> 0 ; row3 {2} -> 0 ; mean 1/3
    assert M.recall_at_k(RECALL_TRUTH, RECALL_SCORES, 1) == approx(1 / 3)
    # k=2: row0 {0,1} -> 1/2 ; row1 {0,2} -> 1/2 ; row3 {2,1} -> 1/1 ; mean (0.5+0.5+1)/3 = 2/3
    assert M.recall_at_k(RECALL_TRUTH, RECALL_SCORES, 2) == approx(2 / 3)
    # k=3 (all columns): every best set is covered -> 1
    assert M.recall_at_k(RECALL_TRUTH, RECALL_SCORES, 3) == approx(1.0)
    assert M.recall_at_k(RECALL_TRUTH, RECALL_SCORES, 99) == approx(1.0)


def test_recall_edge_cases():
    assert math.isnan(M.recall_at_k(np.zeros((2, 2)), np.ones((2, 2)), 1))
    # tie in scores -> col 0 first; best is col 1 -> 0
    assert M.recall_at_k([[0.0, 1.0]], [[0.5, 0.5]], 1) == 0.0
    with pytest.raises(ValueError, match="shape"):
        M.recall_at_k(np.ones((2, 3)), np.ones((2, 2)), 1)


def test_auc():
    # ranks of (0.9, 0.1, 0.4, 0.4) = (4, 1, 2.5, 2.5); positives at 0 and 2
    # (4 + 2.5 - 2*3/2) / (2*2) = 3.5 / 4 = 0.875  (pairs: 1 + 1 + 1 + 0.5 tie)
    assert M.auc([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.4]) == approx(0.875)
    # same thing as 2x2 matrices (flattened)
    assert M.auc(np.array([[1, 0], [1, 0]]), np.array([[0.9, 0.1], [0.4, 0.4]])) == approx(0.875)
    assert M.auc([True, False], [0.9, 0.1]) == 1.0
    assert M.auc([1, 0], [0.1, 0.9]) == 0.0
    assert M.auc([1, 0, 1, 0], [0.3] * 4) == approx(0.5)  # all tied


def test_auc_edge_cases():
    assert math.isnan(M.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(M.auc([0, 0], [0.2, 0.5]))
    with pytest.raises(ValueError, match="binary"):
        M.auc([0, 0.5, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        M.auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="shape"):
        M.auc(np.zeros((2, 3)), np.zeros((3, 2)))


def test_accuracy():
    # predictions >= 0.5 -> (T, T, F, F) vs labels (T, F, T, F) -> (=, !=, !=, =) -> 2/4
    assert M.accuracy([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1]) == approx(0.5)
    # threshold 0.4 -> (T, T, T, F) -> (=, !=, =, =) -> 3/4
    assert M.accuracy([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1], threshold=0.4) == approx(0.75)
    assert M.accuracy(np.eye(2), np.eye(2) * 0.8) == 1.0
    with pytest.raises(ValueError, match="shape"):
        M.accuracy([1, 0], [0.9])
    with pytest.raises(ValueError, match="binary"):
        M.accuracy([2, 0], [0.9, 0.1])


# ---------------------------------------------------------------- cost

def test_aiq_point_below_chord_is_dropped():
    # (1, 0.6) lies below the chord (0,0.5)-(2,0.9) (which is 0.7 at cost 1)
    # hull = that segment: area 2 * (0.5+0.9)/2 = 1.4 ; / (2-0) = 0.7
    assert M.aiq([0.0, 1.0, 2.0], [0.5, 0.6, 0.9]) == approx(0.7)
    # input order does not matter
    assert M.aiq([2.0, 0.0, 1.0], [0.9, 0.5, 0.6]) == approx(0.7)


def test_aiq_concave_points_all_kept():
    # (1, 0.8) is above the chord: area (0.5+0.8)/2 + (0.8+0.9)/2 = 0.65 + 0.85 = 1.5 ; / 2 = 0.75
    assert M.aiq([0, 1, 2], [0.5, 0.8, 0.9]) == approx(0.75)


def test_aiq_non_monotone_and_dominated():
    # (2, 0.7) is worse than the cheaper (1, 0.9): quality is held at 0.9 up to cost 2
    # hull (0,.5),(1,.9),(2,.9): area 0.7 + 0.9 = 1.6 ; / 2 = 0.8
    assert M.aiq([0, 1, 2], [0.5, 0.9, 0.7]) == approx(0.8)
    # a dominated dip in the middle is ignored: same as the straight chord -> 0.7
    assert M.aiq([0, 1, 2], [0.5, 0.3, 0.9]) == approx(0.7)
    # cost range not starting at 0: (1,0.2)-(3,0.6): area 2 * 0.4 = 0.8 ; / 2 = 0.4
    assert M.aiq([1, 3], [0.2, 0.6]) == approx(0.4)


def test_aiq_degenerate_inputs():
    assert M.aiq([0.3], [0.42]) == approx(0.42)               # single point -> its quality
    assert M.aiq([1.0, 1.0], [0.3, 0.6]) == approx(0.6)       # one cost level -> best quality there
    # duplicate cost: (0, 0.4) is beaten by (0, 0.5) -> hull (0,.5)-(2,.9) -> 0.7
    assert M.aiq([0, 0, 2], [0.4, 0.5, 0.9]) == approx(0.7)
    with pytest.raises(ValueError, match="shape"):
        M.aiq([0, 1], [0.5])
    with pytest.raises(ValueError, match="empty"):
        M.aiq([], [])


# Four operating points: (2, 0.55) lies below the chord (1, 0.5)-(3, 0.9), which is 0.7 at cost 2, and
# (4, 0.8) is worse than the cheaper (3, 0.9), so spending 4 buys 0.9 (the cheaper choice).
HULL_COSTS, HULL_QUALITY = [1.0, 2.0, 3.0, 4.0], [0.5, 0.55, 0.9, 0.8]


def test_quality_hull_drops_points_below_the_chord_and_is_non_decreasing():
    hx, hy = M.quality_hull(HULL_COSTS, HULL_QUALITY)
    assert hx.tolist() == [1.0, 3.0, 4.0]
    assert hy.tolist() == approx([0.5, 0.9, 0.9])
    assert np.all(np.diff(hy) >= 0)
    # input order does not matter
    hx2, hy2 = M.quality_hull(HULL_COSTS[::-1], HULL_QUALITY[::-1])
    assert hx2.tolist() == hx.tolist() and hy2.tolist() == approx(hy.tolist())


def test_quality_hull_drops_a_point_on_the_chord_and_keeps_the_best_per_cost():
    # (1, 0.5) is exactly on the chord (0, 0)-(2, 1): a corner only where the slope changes
    hx, hy = M.quality_hull([0, 1, 2], [0, 0.5, 1])
    assert hx.tolist() == [0.0, 2.0] and hy.tolist() == approx([0.0, 1.0])
    # two points at cost 1: the better (0.4) counts; (2, 0.2) is dominated by it and lies on the
    # flat stretch 0.4 -> 0.4, which is below the chord (1, 0.4)-(3, 0.6)
    hx, hy = M.quality_hull([3, 1, 2, 1], [0.6, 0.2, 0.2, 0.4])
    assert hx.tolist() == [1.0, 3.0] and hy.tolist() == approx([0.4, 0.6])


def test_aiq_of_the_hull_without_a_cost_range():
    # hull (1,.5),(3,.9),(4,.9): trapezoids 2 * (0.5+0.9)/2 = 1.4 and 1 * 0.9 = 0.9 ; 2.3 / (4-1)
    assert M.aiq(HULL_COSTS, HULL_QUALITY) == approx(2.3 / 3)


def test_aiq_over_a_cost_range_holds_the_hull_flat_beyond_its_ends():
    # [0, 5]: flat 0.5 on [0, 1] (0.5), the hull on [1, 4] (2.3), flat 0.9 on [4, 5] (0.9) ; 3.7 / 5
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (0, 5)) == approx(0.74)
    # [0, 3]: 0.5 + 1.4 = 1.9 ; / 3
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (0.0, 3.0)) == approx(1.9 / 3)
    # inside the hull, [2, 3.5]: the hull is 0.7 at 2; (0.7+0.9)/2 * 1 + 0.9 * 0.5 = 1.25 ; / 1.5
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (2, 3.5)) == approx(1.25 / 1.5)
    # wholly left of the hull: its cheapest quality; wholly right: its best quality
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (-1, 0.5)) == approx(0.5)
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (5, 7)) == approx(0.9)
    # exactly the hull's own span: the same as without a range
    assert M.aiq(HULL_COSTS, HULL_QUALITY, (1, 4)) == approx(2.3 / 3)
    # a single point is flat everywhere
    assert M.aiq([2.0], [0.7], (1, 3)) == approx(0.7)


@pytest.mark.parametrize("cost_range", [(1, 1), (3, 2), (float("nan"), 2), (0, float("nan")), (0, float("inf"))])
def test_aiq_refuses_a_bad_cost_range(cost_range):
    with pytest.raises(RecrouteError, match="cost_range"):
        M.aiq(HULL_COSTS, HULL_QUALITY, cost_range)
