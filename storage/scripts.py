"""The preset-script library (话术): loads scripts_zh/, renders responses, lints, reloads."""

from __future__ import annotations

import hashlib
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "scripts_zh"
MIN_EXAMPLES = 40
_CORE_FILES = ("common.yaml", "variables.yaml", "compliance.yaml")


class Action(StrEnum):
    ANSWER = "answer"
    QUERY = "query"
    DIALOG = "dialog"
    ESCALATE = "escalate"
    SILENT = "silent"


REQUIRED_KEYS: dict[Action, tuple[str, ...]] = {
    Action.ANSWER: ("reply",),
    Action.SILENT: ("reply",),
    Action.QUERY: ("private", "line", "group_note", "not_authorized", "no_data"),
    Action.DIALOG: ("reply", "done"),
    Action.ESCALATE: ("holding",),
}


class ScriptError(ValueError):
    """A script is missing, malformed, or was rendered without a variable it needs."""


class _ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    text: str | list[str]

    @field_validator("text")
    @classmethod
    def _not_empty(cls, v: str | list[str]) -> str | list[str]:
        if not v or (isinstance(v, list) and not all(s.strip() for s in v)):
            raise ValueError("empty text")
        return v


class _IntentModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    customer_words: str = ""
    action: Action
    urgent: bool = False
    examples: list[str]
    responses: dict[str, _ResponseModel]


@dataclass(frozen=True)
class Script:
    id: str
    version: int
    variants: tuple[str, ...]

    def variables(self) -> set[str]:
        names: set[str] = set()
        for text in self.variants:
            names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names


@dataclass(frozen=True)
class IntentSpec:
    id: str
    zh: str
    action: Action
    urgent: bool
    examples: tuple[str, ...]
    customer_words: str = ""  # the matter as a customer would say it, for clarifying questions


@dataclass(frozen=True)
class Rendered:
    text: str
    script_id: str
    version: int


def _load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ScriptError(f"{path.name}: top level must be a mapping")
    return data


class ScriptLibrary:
    """All scripts in memory; `reload_if_changed` picks up edits without a restart."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._stamp = ""
        self._load()

    # -- loading ---------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        return sorted(self.root.glob("**/*.yaml")) + sorted(self.root.glob("dict/*.txt"))

    def _fingerprint(self) -> str:
        h = hashlib.sha1(usedforsecurity=False)
        for f in self._files():
            st = f.stat()
            h.update(f"{f}:{st.st_mtime_ns}:{st.st_size}".encode())
        return h.hexdigest()

    def _load(self) -> None:
        intents: dict[str, IntentSpec] = {}
        scripts: dict[str, Script] = {}
        for path in sorted((self.root / "intents").glob("*.yaml")):
            for intent_id, raw in (_load_yaml(path).get("intents") or {}).items():
                try:
                    model = _IntentModel.model_validate(raw)
                except ValueError as exc:
                    raise ScriptError(f"{path.name}: intent {intent_id}: {exc}") from exc
                if intent_id in intents:
                    raise ScriptError(f"{path.name}: intent {intent_id} defined twice")
                intents[intent_id] = IntentSpec(
                    intent_id,
                    model.zh,
                    model.action,
                    model.urgent,
                    tuple(model.examples),
                    model.customer_words.strip(),
                )
                for key, resp in model.responses.items():
                    self._add(scripts, f"{intent_id}.{key}", resp)
        common = _load_yaml(self.root / "common.yaml")
        for key, raw in (common.get("responses") or {}).items():
            self._add(scripts, key, _ResponseModel.model_validate(raw))
        labels = dict(common.get("labels") or {})
        variables = dict(_load_yaml(self.root / "variables.yaml").get("variables") or {})
        for path in sorted(self.root.glob("*.yaml")):
            if path.name in _CORE_FILES:
                continue
            # A feature's own file (e.g. summaries.yaml): responses, labels and variables.
            extra = _load_yaml(path)
            for key, raw in (extra.get("responses") or {}).items():
                self._add(scripts, key, _ResponseModel.model_validate(raw))
            for group, values in (extra.get("labels") or {}).items():
                if group in labels:
                    raise ScriptError(f"{path.name}: label group {group} defined twice")
                labels[group] = values
            variables |= extra.get("variables") or {}
        forbidden = _load_yaml(self.root / "compliance.yaml").get("forbidden") or []
        with self._lock:
            self.intents, self.scripts, self.labels = intents, scripts, labels
            self.variables: set[str] = set(variables)
            self.forbidden: list[str] = [str(f) for f in forbidden]
            self._stamp = self._fingerprint()

    @staticmethod
    def _add(scripts: dict[str, Script], script_id: str, resp: _ResponseModel) -> None:
        if script_id in scripts:
            raise ScriptError(f"script {script_id} defined twice")
        variants = (resp.text,) if isinstance(resp.text, str) else tuple(resp.text)
        scripts[script_id] = Script(script_id, resp.version, tuple(v.strip() for v in variants))

    def reload_if_changed(self) -> bool:
        """Reload when any file changed; a broken edit keeps the last good library."""
        if self._fingerprint() == self._stamp:
            return False
        self._load()
        return True

    # -- use -------------------------------------------------------------------------------
    def has(self, script_id: str) -> bool:
        return script_id in self.scripts

    def render(self, script_id: str, variables: Mapping[str, Any], *, pick: int = 0) -> Rendered:
        script = self.scripts.get(script_id)
        if script is None:
            raise ScriptError(f"no script {script_id!r} in scripts_zh")
        template = script.variants[pick % len(script.variants)]
        missing = script.variables() - set(variables)
        if missing:
            raise ScriptError(f"script {script_id} needs {sorted(missing)}")
        return Rendered(template.format_map(dict(variables)), script_id, script.version)

    def label(self, group: str, key: str) -> str:
        return str((self.labels.get(group) or {}).get(key, key))

    def default(self, name: str) -> str:
        """What to call someone we know nothing more about (labels.defaults in common.yaml)."""
        return self.label("defaults", name)

    def examples(self) -> list[tuple[str, str]]:
        return [(text, i.id) for i in self.intents.values() for text in i.examples]

    # -- lint ------------------------------------------------------------------------------
    def lint(self) -> list[str]:
        """Every problem found, as readable sentences; empty when the library is sound."""
        problems: list[str] = []
        for intent in self.intents.values():
            for key in REQUIRED_KEYS[intent.action]:
                if f"{intent.id}.{key}" not in self.scripts:
                    problems.append(f"{intent.id}: action {intent.action} needs response '{key}'")
            if not intent.customer_words:
                problems.append(
                    f"{intent.id}: needs customer_words (how a customer would name the matter)"
                )
            if len(intent.examples) < MIN_EXAMPLES:
                problems.append(
                    f"{intent.id}: {len(intent.examples)} examples, at least {MIN_EXAMPLES}"
                )
        seen: dict[str, str] = {}
        for text, intent_id in self.examples():
            other = seen.setdefault(text.strip(), intent_id)
            if other != intent_id:
                problems.append(f"example {text!r} is under both {other} and {intent_id}")
        for script in self.scripts.values():
            unknown = script.variables() - self.variables
            if unknown:
                problems.append(f"{script.id}: undeclared variables {sorted(unknown)}")
            for text in script.variants:
                lowered = text.lower()
                problems.extend(
                    f"{script.id}: forbidden promise {phrase!r}"
                    for phrase in self.forbidden
                    if phrase.lower() in lowered
                )
        return problems
