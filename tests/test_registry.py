import pytest

from strategies.registry import Registry, RegistryError
from strategies import STRATEGIES, discover, register_strategy
from strategies.base import FusionStrategy


def test_duplicate_name_raises():
    registry: Registry[int] = Registry("thing")
    registry.add("alpha", 1)
    with pytest.raises(RegistryError, match="already registered"):
        registry.add("alpha", 2)
    assert registry.get("alpha") == 1


def test_unknown_name_lists_close_matches_and_all_names():
    registry: Registry[int] = Registry("thing")
    for i, name in enumerate(["harmonic", "hybrid", "concat"]):
        registry.add(name, i)
    with pytest.raises(RegistryError) as info:
        registry.get("harmonik")
    message = str(info.value)
    assert "Did you mean: harmonic" in message
    assert "concat" in message and "hybrid" in message


def test_duplicate_strategy_registration_raises():
    discover()
    with pytest.raises(RegistryError, match="already registered"):
        @register_strategy("concat")
        class Again(FusionStrategy):
            """Duplicate (test only)."""
            family, description, paper = "early", "dup", "none"


def test_unknown_strategy_suggests():
    with pytest.raises(RegistryError, match="Did you mean: concat"):
        discover().get("concatt")


def test_registry_lists_at_least_twenty_strategies():
    assert len(discover()) >= 20
    assert {"concat", "sum", "late_weighted", "cross_attention"} <= set(STRATEGIES.names())


def test_the_error_spells_the_plural_right():
    """Issue 21, item 9: "Known strategies", not "Known strategys"."""
    with pytest.raises(RegistryError, match="Known strategies: ") as info:
        STRATEGIES.get("no_such_strategy")
    assert "strategys" not in str(info.value)
    encoders: Registry[int] = Registry("encoder")
    with pytest.raises(RegistryError, match="Known encoders: "):
        encoders.get("x")
