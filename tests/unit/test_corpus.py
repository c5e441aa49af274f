"""Every manifest of the corpus loads, or is refused with an error naming what it says (no Docker: the load
step only; tests/e2e/test_corpus_e2e.py runs them)."""

from __future__ import annotations

import pytest

from meshd.manifests import ManifestError, load_documents
from tests.corpus.expectations import Expectation, expectations

CORPUS = expectations()


def test_the_corpus_is_large_enough_and_mostly_runs():
    assert len(CORPUS) >= 15
    assert sum(e.outcome != "refused" for e in CORPUS) >= 15


@pytest.mark.parametrize("case", CORPUS, ids=lambda e: e.path.stem)
def test_a_corpus_manifest_loads_or_is_refused_by_name(case: Expectation):
    if case.outcome == "refused":
        with pytest.raises(ManifestError) as caught:
            load_documents(case.text, source=case.path.name)
        assert case.detail in str(caught.value)
    else:
        loaded = load_documents(case.text, source=case.path.name)
        assert loaded.objects
