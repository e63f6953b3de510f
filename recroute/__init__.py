"""recroute: route each prompt to the LLM most likely to answer it well.

Prompts are users, LLMs are items, outcomes are interactions. The public
surface: the data model, loading, routers and the evaluation protocol.
"""
from .data import RoutingData, Split
from .datasets import load_dataset, resolve
from .errors import RecrouteError
from .loaders import load, save_npz
from .routers import Queries, Router, make_router
from .serve import ServedRouter, load_router

__all__ = [
    "RoutingData", "Split", "RecrouteError", "load", "load_dataset", "resolve", "save_npz",
    "Queries", "Router", "make_router", "ServedRouter", "load_router",
]
