"""Project exceptions. Services map them once to gRPC status codes, the CLI to one-line messages."""


class FashionSearchError(Exception):
    """Base class of every error the project raises on purpose."""


class InvalidInputError(FashionSearchError, ValueError):
    """The caller gave something unusable: empty query, corrupt image, unknown filter value, k <= 0."""


class TooLargeError(InvalidInputError):
    """An input over a size limit (an upload, a request body, a gRPC message): the same input will never fit,
    so it is not retried. HTTP 413; over gRPC it is INVALID_ARGUMENT like any bad input."""


class NotFoundError(FashionSearchError, LookupError):
    """A product, index, checkpoint or file that was asked for does not exist."""


class UnavailableError(FashionSearchError):
    """A dependency (encoder service, Redis, Qdrant server) cannot be reached."""


class ResourceExhaustedError(FashionSearchError):
    """A bounded queue or limit is full; the caller may retry later."""


class DeadlineExceededError(FashionSearchError):
    """The caller's deadline passed before the work (or a dependency's part of it) finished."""


class ModelMismatchError(FashionSearchError):
    """The index was built by another model than the one encoding queries."""


class ConfigError(InvalidInputError):
    """A setting has an unusable value (a ``FASHION_*`` variable, the ``FASHION_CONFIG`` file or an explicit
    override), or the ``FASHION_CONFIG`` file cannot be read: the message names the setting and what is wrong."""
