"""YAML text -> plain Python values, refusing duplicate keys (with the dotted path and line of the second one)."""

from __future__ import annotations

import io
from typing import Any

import yaml

from nextmodel_proxy.config.fields import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(_path_of(loader, node, key), f"duplicate key {key!r} (line {line})")
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


def _path_of(loader: _UniqueKeyLoader, target: yaml.Node, key: Any) -> str:
    """Dotted path of `key` inside mapping `target`, found by walking from the document root."""
    parts = _find_path(loader._nm_root, target) if getattr(loader, "_nm_root", None) else None
    return ".".join([*(parts or []), str(key)])


def _find_path(node: yaml.Node, target: yaml.Node) -> list[str] | None:
    if node is target:
        return []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = _find_path(v, target)
            if sub is not None:
                return [str(k.value), *sub]
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            sub = _find_path(v, target)
            if sub is not None:
                return [str(i), *sub]
    return None


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, name: str | None = None) -> Any:
    """The YAML document in `text`; errors name `name` (the file) and the line, not `<unicode string>`."""
    stream: Any = text
    if name is not None:
        stream = io.StringIO(text)
        stream.name = name  # yaml's reader takes the mark's file name from the stream
    loader = _UniqueKeyLoader(stream)
    try:
        root = loader.get_single_node()
        loader._nm_root = root  # type: ignore[attr-defined]
        return loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
