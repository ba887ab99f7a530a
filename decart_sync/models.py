"""The realtime model registry: ``models.realtime("lucy-2.1")``.

Each definition carries what a session needs to know about a model: the URL path of its endpoint,
the frame size and rate it produces (and wants as input), and the ``speed`` values its endpoint
accepts. The names and sizes are those of Decart's current service (protocol section 8); retired
names (``lucy-2``, ``lucy-2.1-vton``, ``mirage_v2``) are unknown here, as they are to the service.

A model the registry does not list (one that ``decart-sync emulator --model`` serves, or a new
one of Decart's) is added with :func:`register`, after which every entry point takes its name.
"""

from __future__ import annotations

import threading

import attrs

from decart_sync.errors import InvalidInputError, ModelNotFoundError

__all__ = ["ModelDefinition", "realtime", "realtime_model_names", "register"]


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(
            f"ModelDefinition.{attribute.name} must be a positive int, got {value!r}"
        )


def _even(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    # Video codecs subsample chroma by two: odd sizes cannot be encoded as is.
    if value % 2:
        raise InvalidInputError(f"ModelDefinition.{attribute.name} must be even, got {value}")


def _non_empty(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"ModelDefinition.{attribute.name} must be a non-empty string, got {value!r}"
        )


def _speeds(instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInputError(
            f"ModelDefinition.speeds must be a tuple of non-empty strings, got {value!r}"
        )


def _url_path(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _non_empty(instance, attribute, value)
    if not value.startswith("/"):
        raise InvalidInputError(f"ModelDefinition.url_path must start with '/', got {value!r}")


@attrs.frozen
class ModelDefinition:
    """A realtime model. Use :func:`realtime` for the known ones; build one by hand for a model
    the registry does not list yet (``ModelDefinition("my-model", "/v1/stream", 30, 1280, 704)``)
    and pass it wherever a model name goes, or :func:`register` it to use its name.
    ``speeds`` are the values of the ``speed`` query parameter the model accepts (``("fast",)``
    for the models that have a fast mode); without it a model runs at its one speed.
    """

    name: str = attrs.field(validator=_non_empty)
    url_path: str = attrs.field(validator=_url_path)
    fps: int = attrs.field(validator=_positive)
    width: int = attrs.field(validator=[_positive, _even])
    height: int = attrs.field(validator=[_positive, _even])
    speeds: tuple[str, ...] = attrs.field(default=(), validator=_speeds)


_FAST = ("fast",)

_REGISTRY: dict[str, ModelDefinition] = {
    d.name: d
    for d in (
        ModelDefinition("lucy-2.1", "/v1/stream", 30, 1280, 720),
        ModelDefinition("lucy-2.5", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-2.6", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-latest", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-vton-3.5", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-vton-3.6", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-vton-latest", "/v1/stream", 30, 1280, 720, _FAST),
        ModelDefinition("lucy-restyle-2", "/v1/stream", 30, 1280, 704),
        ModelDefinition("lucy-restyle-latest", "/v1/stream", 30, 1280, 704),
    )
}


# Registrations may come from any thread; lookups read one dict entry and need no lock.
_REGISTERING = threading.Lock()


def realtime_model_names() -> list[str]:
    """Names of every known realtime model, aliases and registered models included."""
    with _REGISTERING:
        return list(_REGISTRY)


def realtime(name: str) -> ModelDefinition:
    """The definition of the realtime model ``name``; raises :class:`ModelNotFoundError`."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(realtime_model_names())
        raise ModelNotFoundError(
            f"unknown realtime model {name!r}; known models: {known} "
            "(for another model, models.register(ModelDefinition(...)) first)"
        ) from None


def register(definition: ModelDefinition) -> ModelDefinition:
    """Make ``definition`` known by its name, process-wide, and return it::

        models.register(ModelDefinition("my-model", "/v1/stream", 30, 640, 352))
        client.realtime.connect("my-model", source)

    Registering the same definition again is a no-op. A name that is already known with another
    definition raises :class:`InvalidInputError`: a known model's size is what its service
    produces, and code elsewhere in the process relies on it.
    """
    if not isinstance(definition, ModelDefinition):
        raise InvalidInputError(
            f"register() takes a ModelDefinition, got {type(definition).__name__}"
        )
    with _REGISTERING:
        known = _REGISTRY.setdefault(definition.name, definition)
    if known != definition:
        raise InvalidInputError(
            f"model {definition.name!r} is already known as {known!r}; "
            "register another name for another definition"
        )
    return definition
