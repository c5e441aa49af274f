"""Label selectors (`-l`, `labelSelector`): Kubernetes' equality- and set-based grammar, and what each selects."""

from __future__ import annotations

import pytest

from meshd.model.selectors import parse_selector, selects

WEB = {"app": "web", "tier": "front"}
CACHE = {"app": "cache"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(("selector", "selected"), [
    ("", ["web", "cache", "bare"]),
    ("app=web", ["web"]),
    ("app==web", ["web"]),
    ("app = web", ["web"]),
    ("app!=web", ["cache", "bare"]),  # an absent label is "not web"
    ("app=web,tier=front", ["web"]),
    ("app=web,tier=back", []),
    ("tier!=cache", ["web", "cache", "bare"]),
    ("app in (web,cache)", ["web", "cache"]),
    ("app in (web, other)", ["web"]),
    ("app notin (web)", ["cache", "bare"]),
    ("app", ["web", "cache"]),
    ("!app", ["bare"]),
    ("tier,app in (web,cache)", ["web"]),
    ("app=", []),  # the empty value: no object here has app=""
])
def test_what_a_selector_selects(selector, selected):
    requirements = parse_selector(selector)
    objects = {"web": WEB, "cache": CACHE, "bare": BARE}
    assert [name for name, labels in objects.items() if selects(requirements, labels)] == selected


@pytest.mark.parametrize("selector", [
    "app in (x", "app in ()", "app notin x", "=web", "app=web,", ",", "app=we b", "app===web", "app in (a,b c)",
])
def test_a_selector_that_does_not_parse_is_an_error_not_select_all(selector):
    with pytest.raises(ValueError, match="invalid label selector"):
        parse_selector(selector)
