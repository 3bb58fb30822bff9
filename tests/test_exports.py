from __future__ import annotations

import inspect

import plugwire
import plugwire.testing


def public_names(module: object) -> set[str]:
    return {name for name in dir(module) if not name.startswith("_")} - {"annotations"}


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(plugwire.__all__) - {"__version__"}
    helpers = {"testing", "importlib", "TYPE_CHECKING", "Any"}
    assert exported == public_names(plugwire) - helpers


def test_all_is_sorted() -> None:
    assert plugwire.__all__ == sorted(plugwire.__all__)
    assert plugwire.testing.__all__ == sorted(plugwire.testing.__all__)


def test_every_export_is_importable() -> None:
    for name in plugwire.__all__:
        assert getattr(plugwire, name) is not None


def test_public_objects_say_they_come_from_plugwire_modules() -> None:
    for name in plugwire.__all__:
        obj = getattr(plugwire, name)
        if not (isinstance(obj, type) or inspect.isfunction(obj)):
            continue  # type aliases and constants carry their origin's module
        module = getattr(obj, "__module__", "plugwire")
        assert module.startswith("plugwire"), (name, module)


def test_version_comes_from_package_metadata() -> None:
    from importlib.metadata import version

    assert plugwire.__version__ == version("plugwire")
