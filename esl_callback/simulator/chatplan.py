"""The simulator's chatplan: what mod_sms does with a SIP MESSAGE that sofia accepted.

A chatplan is contexts of extensions, like FreeSWITCH's ``chatplan`` XML section (the SIP
profile's context, ``public`` for the stock profiles; a context not found falls back to
``global``). An extension's condition matches a regular expression against a header of the
MESSAGE event (``to_user`` by default); the first extension that matches runs its actions, of
which the simulator knows the three an ESL controller needs (mod_sms.c):

    fire    fire a copy of the MESSAGE event as it is now (with DP_MATCH);
    stop    end the chatplan (EF_NO_CHAT_EXEC): the message is still delivered on;
    final   end the chatplan and add ``final_delivery: true``: nothing is delivered on.

What follows the chatplan is `Simulator.receive_sms`'s (switch_loadable_module.c do_chat_send).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CHAT_APPS = ("fire", "stop", "final")


class ChatplanError(ValueError):
    """The chatplan configuration is invalid."""


@dataclass
class ChatExtension:
    name: str
    expression: str
    actions: list[str]
    field_name: str = "to_user"
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.regex = re.compile(self.expression)
        except re.error as exc:
            raise ChatplanError(f"chat extension {self.name}: bad expression: {exc}") from exc
        unknown = [app for app in self.actions if app not in CHAT_APPS]
        if unknown:
            raise ChatplanError(
                f"chat extension {self.name}: the simulator runs only {', '.join(CHAT_APPS)}, "
                f"not {', '.join(unknown)}"
            )

    def match(self, value: str) -> str | None:
        """None when the condition fails; else the DP_MATCH header's value ("" for none).

        mod_sms's parse_exten sets DP_MATCH only for an expression with a `(`, to each captured
        string in turn (the whole match, then group 1, ...): the last one stays.
        """
        found = self.regex.search(value)
        if found is None:
            return None
        if "(" not in self.expression:
            return ""
        groups = [g for g in found.groups() if g is not None]
        return groups[-1] if groups else found.group(0)


@dataclass
class Chatplan:
    contexts: dict[str, list[ChatExtension]] = field(default_factory=dict)

    def hunt(self, context: str, headers: Iterable[tuple[str, str]]) -> tuple[ChatExtension, str]:
        """chatplan_hunt: the first extension of the context whose condition matches, with its
        DP_MATCH value; KeyError when none does (mod_sms: "SMS chatplan no actions found")."""
        extensions = self.contexts.get(context)
        if extensions is None:
            extensions = self.contexts.get("global", [])
        values = dict(reversed(list(headers)))  # the first header of a name counts
        for extension in extensions:
            matched = extension.match(values.get(extension.field_name, ""))
            if matched is not None:
                return extension, matched
        raise KeyError(context)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Chatplan:
        """``{context: [{name, expression, field (default to_user), actions: [fire, ...]}]}``."""
        contexts: dict[str, list[ChatExtension]] = {}
        for context, extensions in (data or {}).items():
            if not isinstance(extensions, list):
                raise ChatplanError(f"chatplan context {context!r} must be a list of extensions")
            for i, spec in enumerate(extensions):
                if not isinstance(spec, dict) or not spec.get("expression"):
                    raise ChatplanError(f"chatplan {context}: extension {i} needs an expression")
            contexts[str(context)] = [
                ChatExtension(
                    str(spec.get("name") or f"{context}-{i}"),
                    str(spec["expression"]),
                    [str(app) for app in spec.get("actions") or ()],
                    str(spec.get("field") or "to_user"),
                )
                for i, spec in enumerate(extensions)
            ]
        return cls(contexts)
