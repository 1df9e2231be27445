"""The one registry helper every axis uses: unique names, lookups that name the alternatives."""

import pytest

from roarkar.registry import Registry, UnknownName


def test_register_get_and_order():
    reg: Registry[int] = Registry("model", key="model.name")
    reg.register("resnet50", 1)

    @reg.register("small_resnet")
    def build():
        return 2

    assert reg.get("resnet50") == 1
    assert reg.get("small_resnet") is build
    assert reg.names() == ["resnet50", "small_resnet"]
    assert "resnet50" in reg and "vgg" not in reg and len(reg) == 2


def test_duplicate_name_refused():
    reg: Registry[int] = Registry("table")
    reg.register("table1", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("table1", 2)
    assert reg.get("table1") == 1


def test_unknown_name_names_key_nearest_and_all():
    reg: Registry[int] = Registry("model", key="model.name")
    for name in ("resnet50", "resnet18", "vgg16"):
        reg.register(name, 0)
    with pytest.raises(UnknownName) as err:
        reg.get("resnet51")
    message = str(err.value)
    assert message.startswith("model.name='resnet51' is not a known model")
    assert "did you mean 'resnet50'" in message
    assert "registered: resnet50, resnet18, vgg16" in message
    assert isinstance(err.value, ValueError) and isinstance(err.value, KeyError)
    with pytest.raises(UnknownName, match=r"^protocol.name='xyz'.*registered: resnet50"):
        reg.get("xyz", key="protocol.name")
    assert "did you mean" not in reg.unknown_message("xyz")
