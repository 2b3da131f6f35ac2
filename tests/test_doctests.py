"""Every docstring example in the package runs, so an example cannot drift from the code it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

# __main__ runs the CLI on import; Alembic's env module runs only inside a migration; assistant.testing holds
# fakes for tests.
_SKIP = ("assistant.__main__", "assistant.store.migrations", "assistant.testing")


def _modules() -> list[str]:
    # api/ and eval/ install as assistant.api and assistant.eval (pyproject.toml): walked from their own paths.
    import assistant.api
    import assistant.eval

    names = []
    for pkg in (assistant, assistant.api, assistant.eval):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
            if not info.name.startswith(_SKIP):
                names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"


def test_the_examples_are_found() -> None:
    finder = doctest.DocTestFinder()
    attempted = sum(
        len(t.examples) for name in _modules() for t in finder.find(importlib.import_module(name))
    )
    assert attempted >= 50, attempted  # a broken walk would pass every module with nothing to run
