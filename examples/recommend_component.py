"""recroute as a recommendation component inside a Python application.

    python examples/recommend_component.py [ROUTER_FOLDER]

ROUTER_FOLDER is a saved router (default ./routers/bilinear-routerbench, which
examples/fit_eval_route.py writes). The application asks one question: "for
this prompt, which of the LLMs I can afford right now should answer?", and gets
back ranked (llm, score) pairs. The pool is chosen per request, so one fitted
router serves a cheap tier and a premium tier alike.
"""
from __future__ import annotations

import sys
from typing import Sequence

import recroute


class LLMRecommender:
    """Recommends LLMs (items) for prompts (users) with a router fitted by recroute."""

    def __init__(self, folder: str):
        # The router and the text encoder it was fitted with; the encoder model loads on the first prompt.
        self._served = recroute.load_router(folder)

    @property
    def llms(self) -> list[str]:
        """Every LLM the router can recommend."""
        return self._served.models

    def recommend(self, prompt: str, pool: Sequence[str] | None = None, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` best LLMs of ``pool`` (default: all) for ``prompt``, best first, with their scores.

        Scores rank LLMs for one prompt (higher is better); their scale is the router's own (log-odds for
        the bilinear router), so compare them within a ranking, not across routers.
        """
        return self.recommend_many([prompt], pool, k)[0]

    def recommend_many(self, prompts: Sequence[str], pool: Sequence[str] | None = None,
                       k: int = 3) -> list[list[tuple[str, float]]]:
        """As :meth:`recommend` for a batch of prompts: one encoder pass and one ranking for all of them."""
        rankings = self._served.rank(list(prompts), pool=pool, k=k)
        return [[(entry["llm"], entry["score"]) for entry in ranking] for ranking in rankings]

    def best(self, prompt: str, pool: Sequence[str] | None = None) -> str:
        """The single LLM to call."""
        return self.recommend(prompt, pool, k=1)[0][0]


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "routers/bilinear-routerbench"
    recommender = LLMRecommender(folder)
    print(f"{folder}: recommends among {len(recommender.llms)} LLMs")

    # Two tiers of the same application: what a free user may get, and what a paying user may get.
    pools = {
        "cheap": ["mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "meta/code-llama-instruct-34b-chat",
                  "WizardLM/WizardLM-13B-V1.2"],
        "strong": ["gpt-4-1106-preview", "claude-v1", "claude-v2", "zero-one-ai/Yi-34B-Chat"],
    }
    prompts = [
        "Write a function that merges two sorted lists into one sorted list.",
        "A student wants to know which material conducts electricity best: rubber, glass, copper or wood?",
        "Sarah lent her umbrella to Emma because she was going out in the rain. Who was going out?",
    ]
    for tier, pool in pools.items():
        print(f"\n{tier} pool: {', '.join(pool)}")
        for prompt, ranking in zip(prompts, recommender.recommend_many(prompts, pool, k=2)):
            picks = ", ".join(f"{llm} ({score:+.2f})" for llm, score in ranking)
            print(f"  {prompt[:70]:<70} -> {picks}")
    print(f"\nbest of all for the first prompt: {recommender.best(prompts[0])}")
