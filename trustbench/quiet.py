"""Silence third-party chatter that says nothing about the run (adverts, internal deprecations)."""

from __future__ import annotations

import logging
import warnings


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def silence_third_party_noise() -> None:
    """Drop Lightning's product tips, its own internal pytree deprecation warning and faiss' note on which
    CPU instructions it loaded."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
