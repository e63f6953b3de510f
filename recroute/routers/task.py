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
logistic regression reads the embedding itself. An LLM's score is its mean
score in each task weighted by them. A task mean is shrunk towards the
LLM's overall mean with a prior worth ``prior`` prompts; tasks with fewer
than ``min_task`` training prompts are pooled into one. Without two such
tasks the router scores every prompt by the LLMs' overall means: the best
single LLM. With ``logging_clip`` (a routing log) every record counts its
clipped, self-normalised inverse logging propensity
(:func:`recroute.logs.propensity_weights`) in the task means and the prior.
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..logs import propensity_weights
from .base import Queries, Router
from .crossval import normalise, shrunk_means

#: The name of the task that pools the rare ones (and of the only one, when the data names none).
POOLED = "<other>"


class TaskRouter(Router):
    """Each LLM's shrunk mean score per task, weighted by the task probabilities predicted from the prompt."""

    trains_on_validation = True

    def __init__(self, prior: float = 5.0, min_task: int = 10, logging_clip: float | None = None):
        self.prior = prior
        self.min_task = min_task
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
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
            coef, intercept = logistic.coef_ @ directions.T, logistic.intercept_
            if len(self.tasks_) == 2:  # sklearn keeps one logit for two classes: softmax of (0, z) is sigmoid(z)
                self.coef_[1], self.intercept_[1] = coef[0], intercept[0]
            else:
                self.coef_[:], self.intercept_[:] = coef, intercept

    def task_probabilities(self, queries: Queries) -> np.ndarray:
        """Each prompt's predicted probability of each task in ``tasks_``."""
        logits = normalise(queries.embeddings) @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "tasks_": ("U", ("tasks",)), "task_scores_": ("f", ("tasks", "m")),
                "coef_": ("f", ("tasks", "d")), "intercept_": ("f", ("tasks",))}

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        return self.task_probabilities(queries) @ self.task_scores_[:, columns]


def _tasks(groups: np.ndarray | None, n: int, min_task: int) -> np.ndarray:
    """Each prompt's task, the rare ones (under ``min_task`` prompts) pooled under :data:`POOLED`."""
    if groups is None:
        return np.full(n, POOLED)
    names, counts = np.unique(groups, return_counts=True)
    rare = set(names[counts < min_task].tolist())
    return np.array([POOLED if g in rare else str(g) for g in groups])
