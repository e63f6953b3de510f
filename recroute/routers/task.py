"""Route by the prompt's predicted task: each LLM's mean score over the tasks it may belong to.

Routing data usually names each prompt's task (``RoutingData.groups``: the
benchmark or category it came from), and on the bundled data knowing the
task alone routes as well as the learned routers or better. New prompts
come without it, so its probabilities are predicted from the prompt's
embedding: a linear discriminant (sklearn's LDA with Ledoit–Wolf shrinkage:
closed form, nothing to tune) projects the embedding onto the directions
that tell the tasks apart, and a multinomial logistic regression on those
few coordinates turns them into probabilities (LDA's own Gaussian posterior
is overconfident where tasks overlap, and the probabilities weigh the task
means). Where the tasks' prompts do not vary within a task (the within-task
scatter is singular, and the eigen solver has nothing to solve), the
logistic regression reads the embedding itself. Where the training prompts
come with their texts, a second multinomial logistic regression reads the
character n-grams of the prompt's words (TF-IDF): benchmarks and templates
differ in wording and format, which a sentence embedding of a prompt's
first 256 tokens blurs (on LLMRouter 90% of test prompts' tasks right
against 88%, and the two err on different prompts); a prompt that comes
with its text (:class:`Queries` ``texts``) takes the mean of the two
classifiers' probabilities, one without it the embedding's alone. An LLM's
score is its mean score in each task weighted by them. A task mean is
shrunk towards the LLM's overall mean with a prior worth ``prior``
prompts; tasks with fewer than ``min_task`` training prompts are pooled
into one. Without two such tasks the router scores every prompt by the
LLMs' overall means: the best single LLM. With ``logging_clip`` (a routing
log) every record counts its clipped, self-normalised inverse logging
propensity (:func:`recroute.logs.propensity_weights`) in the task means
and the prior.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from ..data import RoutingData
from ..errors import RecrouteError
from ..logs import propensity_weights
from .base import Queries, Router
from .crossval import normalise, shrunk_means

#: The name of the task that pools the rare ones (and of the only one, when the data names none).
POOLED = "<other>"
#: How the text classifier reads a prompt: TF-IDF of its character 2–4-grams within words, at most
#: MAX_TERMS of them, each seen in at least two training prompts.
TEXT_FEATURES = {"analyzer": "char_wb", "ngram_range": (2, 4), "sublinear_tf": True, "dtype": np.float32}
MAX_TERMS = 50_000
#: The text classifier's inverse regularisation: many sparse n-grams, tasks that their wording separates.
TEXT_C = 10.0
#: The text classifier's arrays: all of them or none.
TEXT_ARRAYS = ("terms_", "idf_", "text_coef_", "text_intercept_")
#: Fitted text classifiers kept for reuse, and per classifier the prompt lists whose probabilities it keeps:
#: its fit reads only the prompts' texts and tasks, which every pool of an evaluation split shares (and
#: `auto`'s folds with it), and reading character n-grams is most of the time of fitting `auto`.
KEPT_CLASSIFIERS = 8
KEPT_TEXT_LISTS = 8


class TaskRouter(Router):
    """Each LLM's shrunk mean score per task, weighted by the task probabilities predicted from the prompt."""

    trains_on_validation = True

    def __init__(self, prior: float = 5.0, min_task: int = 10, logging_clip: float | None = None):
        self.prior = prior
        self.min_task = min_task
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        self._words = None
        for name in TEXT_ARRAYS:  # a refit without texts keeps no earlier fit's classifier
            self.__dict__.pop(name, None)
        tasks = _tasks(train.groups, train.n_prompts, self.min_task)
        self.tasks_, index = np.unique(tasks, return_inverse=True)
        weights = None if self.logging_clip is None else propensity_weights(train, self.logging_clip)
        self.task_scores_ = shrunk_means(index, train.scores, len(self.tasks_), self.prior, weights)
        x = normalise(train.embeddings)
        self.coef_ = np.zeros((len(self.tasks_), x.shape[1]), dtype=np.float32)
        self.intercept_ = np.zeros(len(self.tasks_), dtype=np.float32)
        if len(self.tasks_) > 1:
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
            from sklearn.linear_model import LogisticRegression

            try:
                lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, index)
                directions = lda.scalings_[:, :len(self.tasks_) - 1]  # the eigen solver's transform is x @ these
            except np.linalg.LinAlgError:  # no within-task scatter (each task's prompts share one embedding):
                directions = np.eye(x.shape[1])  # no discriminant to solve for; the regression reads x itself
            logistic = LogisticRegression(max_iter=1000).fit(x @ directions, index)
            # both steps are linear, so the logits are one matrix product of the embedding
            self.coef_[:], self.intercept_[:] = _all_logits(logistic, len(self.tasks_), directions.T)
            if train.prompts is not None:
                texts = [str(t) for t in train.prompts]
                self._words = _remember(_FITTED, _digest(texts, index), lambda: _fit_words(texts, index),
                                        KEPT_CLASSIFIERS)
                if self._words is not None:
                    self.terms_, self.idf_ = self._words.terms, self._words.idf
                    self.text_coef_, self.text_intercept_ = self._words.coef, self._words.intercept

    def _restore(self, arrays) -> None:
        held = [name for name in TEXT_ARRAYS if getattr(self, name, None) is not None]
        if held and len(held) < len(TEXT_ARRAYS):
            missing = next(name for name in TEXT_ARRAYS if name not in held)
            raise RecrouteError(f"holds the text classifier's '{held[0]}' but lacks its '{missing}'")
        if held:
            self._words = WordClassifier(self.terms_, self.idf_, self.text_coef_, self.text_intercept_)

    def task_probabilities(self, queries: Queries) -> np.ndarray:
        """Each prompt's predicted probability of each task in ``tasks_``: the embedding's classifier's, or
        with the prompts' ``texts`` (and a text classifier) the mean of its and the words' classifier's."""
        probabilities = _softmax(normalise(queries.embeddings) @ self.coef_.T + self.intercept_)
        if queries.texts is not None and getattr(self, "_words", None) is not None:
            probabilities = (probabilities + self._words.probabilities([str(t) for t in queries.texts])) / 2
        return probabilities

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "tasks_": ("U", ("tasks",)), "task_scores_": ("f", ("tasks", "m")),
                "coef_": ("f", ("tasks", "d")), "intercept_": ("f", ("tasks",)), "terms_?": ("U", ("terms",)),
                "idf_?": ("f", ("terms",)), "text_coef_?": ("f", ("tasks", "terms")),
                "text_intercept_?": ("f", ("tasks",))}

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        return self.task_probabilities(queries) @ self.task_scores_[:, columns]


class WordClassifier:
    """Task probabilities from a prompt's words: the TF-IDF of its character n-grams through a multinomial
    logistic regression. Its arrays are the router's saved ones, shared and read-only."""

    def __init__(self, terms: np.ndarray, idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.terms, self.idf, self.coef, self.intercept = terms, idf, coef, intercept
        self._vectorizer = TfidfVectorizer(vocabulary={term: i for i, term in enumerate(terms.tolist())},
                                           **TEXT_FEATURES)
        self._vectorizer.idf_ = idf
        self._kept: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Each text's probability of each task, (len(texts), tasks); the last few lists asked for are kept."""
        return _remember(self._kept, _digest(texts), lambda: _read_only(self._probabilities(texts)), KEPT_TEXT_LISTS)

    def _probabilities(self, texts: list[str]) -> np.ndarray:
        return _softmax(np.asarray(self._vectorizer.transform(texts) @ self.coef.T) + self.intercept)


#: Text classifiers fitted, by the digest of their prompts' texts and tasks.
_FITTED: OrderedDict[bytes, WordClassifier | None] = OrderedDict()


def _fit_words(texts: list[str], index: np.ndarray) -> WordClassifier | None:
    """The task classifier of these prompts' words (``index``: each one's task); None where they share no
    n-gram twice."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(min_df=2, max_features=MAX_TERMS, **TEXT_FEATURES)
    try:
        words = vectorizer.fit_transform(texts)
    except ValueError:  # sklearn: "After pruning, no terms remain"
        return None
    logistic = LogisticRegression(C=TEXT_C, max_iter=2000).fit(words, index)
    coef, intercept = _all_logits(logistic, int(index.max()) + 1)
    terms = np.array(sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get), dtype=str)
    return WordClassifier(*(_read_only(a) for a in (terms, vectorizer.idf_.astype(np.float32),
                                                     coef.astype(np.float32), intercept.astype(np.float32))))


_KEEPING = threading.Lock()


def _remember(kept: OrderedDict, key: bytes, make, limit: int):
    """``kept[key]``, made by ``make()`` if absent; the ``limit`` most recently used entries are kept."""
    with _KEEPING:
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    value = make()  # outside the lock: two threads may both make it, and both get the same answer
    with _KEEPING:
        kept[key] = value
        if len(kept) > limit:
            kept.popitem(last=False)
    return value


def _digest(texts: list[str], index: np.ndarray | None = None) -> bytes:
    """A fingerprint of the texts (and their tasks): what a kept classifier or probability table is found by."""
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    if index is not None:  # and how the classifier reads them, should a program change the constants
        digest.update(np.ascontiguousarray(index, dtype=np.int64).tobytes())
        digest.update(repr((TEXT_FEATURES, MAX_TERMS, TEXT_C)).encode())
    return digest.digest()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _all_logits(logistic, tasks: int, directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fitted multinomial logistic regression's logits for every task, (tasks, features) and (tasks,), its
    coefficients mapped back through ``directions`` if given. sklearn keeps one logit for two classes:
    softmax of (0, z) is sigmoid(z)."""
    coef = logistic.coef_ if directions is None else logistic.coef_ @ directions
    coef, intercept = np.asarray(coef), logistic.intercept_
    if tasks == 2:
        return np.vstack([np.zeros_like(coef[0]), coef[0]]), np.array([0.0, intercept[0]])
    return coef, intercept


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _tasks(groups: np.ndarray | None, n: int, min_task: int) -> np.ndarray:
    """Each prompt's task, the rare ones (under ``min_task`` prompts) pooled under :data:`POOLED`."""
    if groups is None:
        return np.full(n, POOLED)
    names, counts = np.unique(groups, return_counts=True)
    rare = set(names[counts < min_task].tolist())
    return np.array([POOLED if g in rare else str(g) for g in groups])
