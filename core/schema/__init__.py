"""Declarative attribute schema: the single source of attribute names and values.

Everything that needs an attribute name (renderer, captions, prompts, importers, metrics, UI)
reads it from a :class:`Schema`; the default one is ``hsd.yaml`` beside this file.

The types live in ``core.schema.types``, loading and checking a schema file in ``core.schema.load``;
callers import every name from here.
"""

from __future__ import annotations

from core.schema.load import DEFAULT_SCHEMA_PATH, default_schema, load_schema
from core.schema.types import (
    UNKNOWN,
    Attribute,
    Facet,
    Labels,
    ObjectForms,
    QuestionForms,
    Rule,
    Schema,
    SchemaError,
    Value,
)

__all__ = ["DEFAULT_SCHEMA_PATH", "UNKNOWN", "Attribute", "Facet", "Labels", "ObjectForms", "QuestionForms", "Rule", "Schema",
           "SchemaError", "Value", "default_schema", "load_schema"]
