"""Typed, path-aware access to one document's fields: every failure names the field, every ignored field warns."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from meshd.manifests.errors import FieldPath, ManifestError, describe_document, format_path

INT32_MAX = 2**31 - 1
MISSING: Any = object()


def describe_value(value: Any) -> str:
    """How a wrong value is shown in a message: its YAML type and a short repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# values of ignored fields that mean what meshd does anyway (as `kubectl get -o yaml` prints them)
HARMLESS_VALUES: Mapping[str, Any] = {
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "sessionAffinity": "None",
    "internalTrafficPolicy": "Cluster",
    "externalTrafficPolicy": "Cluster",
    "ipFamilyPolicy": "SingleStack",
    "ipFamilies": ["IPv4"],
}


def is_unset(key: str, value: Any) -> bool:
    """An empty, false or default value: the field asks for nothing meshd does not do."""
    if value is None or value is False or (isinstance(value, (str, dict, list)) and not value):
        return True
    return key in HARMLESS_VALUES and HARMLESS_VALUES[key] == value


class DocumentReader:
    """Reads one object's fields; `fail` builds a ManifestError naming source, document, object and path."""

    def __init__(
        self,
        *,
        source: str,
        document: int | None,
        item: int | None = None,
        lines: Mapping[FieldPath, int] | None = None,
        texts: Mapping[FieldPath, str] | None = None,
        line_base: FieldPath = (),
        warnings: list[str] | None = None,
    ) -> None:
        self.source = source
        self.document = document
        self.item = item
        self.lines = lines or {}
        self.texts = texts or {}
        self.line_base = line_base
        self.warnings: list[str] = warnings if warnings is not None else []
        self.kind: str | None = None
        self.name: str | None = None

    # --- reporting ---------------------------------------------------------------------------------------

    def line_of(self, path: FieldPath) -> int | None:
        full = self.line_base + path
        while True:
            line = self.lines.get(full)
            if line is not None or not full:
                return line
            full = full[:-1]

    def fail(self, path: FieldPath, message: str) -> ManifestError:
        return ManifestError(
            message,
            source=self.source,
            document=self.document,
            item=self.item,
            kind=self.kind,
            name=self.name,
            path=path,
            line=self.line_of(path),
        )

    def warn(self, path: FieldPath, message: str) -> None:
        where = describe_document(self.source, self.document, self.item, self.kind, self.name)
        self.warnings.append(f"{where}: {format_path(path)}: {message}" if path else f"{where}: {message}")

    # --- structure ---------------------------------------------------------------------------------------

    def mapping(self, value: Any, path: FieldPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {describe_value(value)}")
        return value

    def check_fields(
        self,
        obj: Mapping[str, Any],
        path: FieldPath,
        *,
        known: Iterable[str],
        ignored: Mapping[str, str] | None = None,
        unsupported: Iterable[str] = (),
    ) -> None:
        """Unknown fields fail ("unknown field", with a suggestion); `ignored` ones warn with their reason;
        `unsupported` ones fail as "not supported" (or, a mapping, with its reason). Either is silent when empty, false or the default
        Kubernetes prints (`securityContext: {}`, `hostNetwork: false`, `dnsPolicy: ClusterFirst`)."""
        known_set = set(known)
        ignored = ignored or {}
        unsupported_set = set(unsupported)
        for key, value in obj.items():
            if key in known_set:
                continue
            if (key in ignored or key in unsupported_set) and is_unset(key, value):
                continue
            if key in ignored:
                self.warn(path + (key,), ignored[key])
            elif key in unsupported_set:
                reason = unsupported.get(key) if isinstance(unsupported, Mapping) else None
                raise self.fail(path + (key,), reason or "not supported")
            else:
                close = difflib.get_close_matches(key, [*known_set, *ignored, *unsupported_set], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise self.fail(path + (key,), f"unknown field{hint}")

    def get(self, obj: Mapping[str, Any], key: str, path: FieldPath, *, required: bool = False) -> Any:
        """The raw value, or MISSING; a null counts as absent (as in Kubernetes' JSON decoding)."""
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(path + (key,), "required field is missing")
            return MISSING
        return value

    # --- scalars -----------------------------------------------------------------------------------------

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: FieldPath,
        *,
        required: bool = False,
        default: str | None = None,
        allow_empty: bool = True,
    ) -> str | None:
        value = self.get(obj, key, path, required=required)
        if value is MISSING:
            return default
        return self.as_string(value, path + (key,), allow_empty=allow_empty or not required)

    def as_string(self, value: Any, path: FieldPath, *, allow_empty: bool = True) -> str:
        if not isinstance(value, str):
            written = self.texts.get(self.line_base + path)
            if written is None and isinstance(value, (int, float)):
                written = ("true" if value else "false") if isinstance(value, bool) else str(value)
            hint = f' (quote it: "{written}")' if written is not None and written != "" else ""
            raise self.fail(path, f"expected a string, got {describe_value(value)}{hint}")
        if not allow_empty and value == "":
            raise self.fail(path, "must not be empty")
        return value

    def choice(
        self, obj: Mapping[str, Any], key: str, path: FieldPath, choices: Iterable[str], *, default: str
    ) -> str:
        options = tuple(choices)
        value = self.string(obj, key, path, default=default)
        assert value is not None
        if value not in options:
            listed = ", ".join(options)
            raise self.fail(path + (key,), f'unsupported value "{value}" (supported: {listed})')
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: FieldPath, *, default: bool = False) -> bool:
        value = self.get(obj, key, path)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            raise self.fail(path + (key,), f"expected true or false, got {describe_value(value)}")
        return value

    def integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: FieldPath,
        *,
        default: int | None = None,
        required: bool = False,
        minimum: int | None = None,
        maximum: int = INT32_MAX,
    ) -> int | None:
        value = self.get(obj, key, path, required=required)
        if value is MISSING:
            return default
        return self.as_integer(value, path + (key,), minimum=minimum, maximum=maximum)

    def as_integer(
        self, value: Any, path: FieldPath, *, minimum: int | None = None, maximum: int = INT32_MAX
    ) -> int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {describe_value(value)}")
        self._check_range(value, path, minimum, maximum)
        return value

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: FieldPath,
        *,
        default: float,
        minimum: float | None = 0,
        maximum: float = INT32_MAX,
    ) -> float:
        """A number of seconds: integers or fractions ("periodSeconds: 0.2")."""
        value = self.get(obj, key, path)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path + (key,), f"expected a number, got {describe_value(value)}")
        self._check_range(value, path + (key,), minimum, maximum)
        return value

    def _check_range(self, value: float, path: FieldPath, minimum: float | None, maximum: float) -> None:
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be greater than or equal to {minimum}, got {value}")
        if value > maximum:
            raise self.fail(path, f"must be less than or equal to {maximum}, got {value}")

    # --- collections -------------------------------------------------------------------------------------

    def sequence(
        self, obj: Mapping[str, Any], key: str, path: FieldPath, *, required: bool = False
    ) -> list[Any]:
        value = self.get(obj, key, path, required=required)
        if value is MISSING:
            return []
        if not isinstance(value, list):
            raise self.fail(path + (key,), f"expected a list, got {describe_value(value)}")
        return value

    def strings(self, obj: Mapping[str, Any], key: str, path: FieldPath) -> tuple[str, ...]:
        return tuple(self.as_string(v, path + (key, i)) for i, v in enumerate(self.sequence(obj, key, path)))

    def string_map(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: FieldPath,
        *,
        check_key: Callable[[str], str | None] | None = None,
        check_value: Callable[[str], str | None] | None = None,
    ) -> dict[str, str]:
        value = self.get(obj, key, path)
        if value is MISSING:
            return {}
        mapping = self.mapping(value, path + (key,))
        result: dict[str, str] = {}
        for k, v in mapping.items():
            item_path = path + (key, k)
            if check_key is not None and (problem := check_key(k)):
                raise self.fail(item_path, f"invalid key: {problem}")
            text = self.as_string(v, item_path)
            if check_value is not None and (problem := check_value(text)):
                raise self.fail(item_path, f'invalid value "{text}": {problem}')
            result[k] = text
        return result

    def check_name(
        self, value: str | None, path: FieldPath, check: Callable[[str], str | None], *, required: bool = True
    ) -> str | None:
        """Validates a name already read as a string (None when absent)."""
        if value is None or value == "":
            if required:
                raise self.fail(path, "required field is missing")
            return None
        problem = check(value)
        if problem:
            shown = value if len(value) <= 64 else value[:61] + "..."
            raise self.fail(path, f'invalid name "{shown}": {problem}')
        return value
