"""A small error hierarchy. Messages say what was expected, what came in, and what to do."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigurationError(AssistantError):
    """A setting is missing or invalid; the message names the environment variable."""


class ModelLoadError(AssistantError):
    """Shipped weights or an index could not be loaded or do not match what the code expects."""


class InvalidInputError(AssistantError):
    """Input from a user, a file or a socket is malformed."""


class DataError(AssistantError):
    """A data set or knowledge-base file could not be read."""


class StaleIndexError(AssistantError):
    """The retrieval index does not match the knowledge base or the encoder it claims to use."""
