"""Maps the design card's top-level folders into one importable namespace.

``assistant/`` is the library, ``api/`` installs as ``assistant.api`` and ``eval/`` as ``assistant.eval``, so
the installed project claims no generic top-level name (``api``, ``eval``). Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {"assistant": "assistant", "assistant.api": "api", "assistant.eval": "eval"}

packages = find_packages(include=["assistant", "assistant.*"])
for name, folder in ROOTS.items():
    if name != "assistant":
        packages += [name] + [f"{name}.{sub}" for sub in find_packages(where=folder)]

# Web pages, SQL migrations and other non-Python files ship inside the packages that read them.
PACKAGE_DATA = {
    "assistant.api": ["static/*", "static/**/*"],
    "assistant.store": ["migrations/*", "migrations/**/*"],
}

setup(packages=packages, package_dir=ROOTS, package_data=PACKAGE_DATA, include_package_data=True)
