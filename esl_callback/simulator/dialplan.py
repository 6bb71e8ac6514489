"""The simulator's dialplan: contexts of extensions, virtual phones, and FreeSWITCH XML export.

An extension matches a regular expression against a caller-profile field (the destination
number by default) and runs real FreeSWITCH applications. Virtual phones are extensions too;
their shorthands (answer after N seconds, busy, keys these digits, ...) expand into the same
applications, so a scenario can be exported with :func:`to_xml` and run on a real switch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

if TYPE_CHECKING:
    from esl_callback.simulator.channel import Channel

Action = tuple[str, str | None]


class DialplanError(ValueError):
    """The dialplan configuration is invalid."""


def parse_action(text: str) -> Action:
    """``"playback foo.wav"`` -> ("playback", "foo.wav"); ``"answer"`` -> ("answer", None)."""
    app, _, data = str(text).strip().partition(" ")
    if not app:
        raise DialplanError("empty action")
    return app, data.strip() or None


@dataclass
class Extension:
    name: str
    expression: str
    actions: list[Action]
    field_name: str = "destination_number"
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.regex = re.compile(self.expression)
        except re.error as exc:
            raise DialplanError(f"extension {self.name}: bad expression: {exc}") from exc

    def match(self, value: str) -> tuple[list[Action], list[str]] | None:
        """The actions with $1..$9 filled in and the captures ($0 first), or None."""
        found = self.regex.search(value)
        if found is None:
            return None
        groups = found.groups()

        def fill(data: str | None) -> str | None:
            if data is None:
                return None
            return re.sub(r"\$(\d)", lambda m: _group(groups, int(m.group(1))), data)

        captures = [found.group(0), *(g or "" for g in groups)] if groups else []
        return [(app, fill(data)) for app, data in self.actions], captures


def _group(groups: tuple[str | None, ...], index: int) -> str:
    if 1 <= index <= len(groups):
        return groups[index - 1] or ""
    return ""


# A phone that stays on the line is a person holding it: the `park` that models it must not
# be ended by the park_timeout its loopback channel copied from the leg that called it.
STAY_ON_THE_LINE: list[Action] = [("unset", "park_timeout"), ("park", None)]


def phone_actions(spec: Mapping[str, Any]) -> list[Action]:
    """Expand a virtual phone's shorthands into the applications a real phone extension runs.

    Keys (all optional): ``actions`` (explicit list, wins over the rest), ``busy``,
    ``unreachable``, ``no_answer``, ``respond`` (SIP code), ``ring`` (default true),
    ``early_media`` (a sound to play as early media), ``answer_after`` (seconds),
    ``keys`` (list of {after: seconds, digits: str}), ``play`` (a sound after answer),
    ``hangup_after`` (seconds after the rest), ``hangup_cause``.
    """
    if "actions" in spec:
        return [parse_action(a) for a in spec["actions"]]
    if spec.get("busy"):
        return [("hangup", "USER_BUSY")]
    if spec.get("unreachable"):
        return [("hangup", "SUBSCRIBER_ABSENT")]
    if "respond" in spec:
        return [("respond", str(spec["respond"]))]
    actions: list[Action] = []
    if spec.get("ring", True):
        actions.append(("ring_ready", None))
    if spec.get("early_media"):
        actions += [("pre_answer", None), ("playback", str(spec["early_media"]))]
    if spec.get("no_answer") or "answer_after" not in spec:
        return [*actions, *STAY_ON_THE_LINE]
    after = float(spec["answer_after"])
    if after > 0:
        actions.append(("sleep", str(int(after * 1000))))
    actions.append(("answer", None))
    for key in spec.get("keys", ()):
        wait = float(key.get("after", 0))
        if wait > 0:
            actions.append(("sleep", str(int(wait * 1000))))
        actions.append(("send_dtmf", str(key["digits"])))
    if spec.get("play"):
        actions.append(("playback", str(spec["play"])))
    if "hangup_after" in spec:
        wait = float(spec["hangup_after"])
        if wait > 0:
            actions.append(("sleep", str(int(wait * 1000))))
        cause = spec.get("hangup_cause")
        actions.append(("hangup", str(cause) if cause else None))
    else:
        actions += STAY_ON_THE_LINE
    return actions


class Dialplan:
    """Contexts (name -> ordered extensions); the first matching extension wins."""

    def __init__(self, contexts: Mapping[str, Iterable[Extension]] | None = None) -> None:
        self.contexts: dict[str, list[Extension]] = {
            name: list(exts) for name, exts in (contexts or {}).items()
        }

    @classmethod
    def from_config(
        cls, contexts: Mapping[str, Any] | None, phones: Mapping[str, Any] | None
    ) -> Dialplan:
        plan = cls()
        for context, extensions in (contexts or {}).items():
            for i, ext in enumerate(extensions or ()):
                if not isinstance(ext, Mapping) or "expression" not in ext:
                    raise DialplanError(f"context {context}: extension {i} needs an expression")
                plan.add(
                    str(context),
                    Extension(
                        name=str(ext.get("name", f"ext{i}")),
                        expression=str(ext["expression"]),
                        actions=[parse_action(a) for a in ext.get("actions", ())],
                        field_name=str(ext.get("field", "destination_number")),
                    ),
                )
        if phones:
            context = str(phones.get("context", "phones"))
            for number, spec in (phones.get("lines") or {}).items():
                plan.add(
                    context,
                    Extension(
                        str(number), f"^{re.escape(str(number))}$", phone_actions(spec or {})
                    ),
                )
        return plan

    def add(self, context: str, extension: Extension) -> None:
        self.contexts.setdefault(context, []).append(extension)

    def lookup(
        self, context: str, number: str, channel: Channel | None = None
    ) -> list[Action] | None:
        """The actions for ``number`` in ``context``; None when nothing matches.

        With a channel, a condition's captures go to its DP_MATCH variable like
        mod_dialplan_xml does (only when the expression has groups).
        """
        for ext in self.contexts.get(context, ()):
            value = number
            if ext.field_name != "destination_number" and channel is not None:
                name = ext.field_name
                value = str(getattr(channel.profile, name, "") or channel.get_var(name) or "")
            result = ext.match(value)
            if result is not None:
                actions, captures = result
                if channel is not None:
                    channel.extension_name, channel.extension_number = ext.name, number
                if captures and channel is not None:
                    channel.set_var("DP_MATCH", "ARRAY::" + "|:".join(captures))
                return actions
        return None

    def to_xml(self) -> str:
        return to_xml(self)

    def hunt(self, channel: Channel) -> list[Action] | None:
        """mod_dialplan_xml's hunt for an inbound channel's destination in its context."""
        profile = channel.profile
        return self.lookup(profile.context, profile.destination_number, channel)


def to_xml(plan: Dialplan) -> str:
    """The dialplan as FreeSWITCH XML (one <include> with every context)."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<include>"]
    for context, extensions in plan.contexts.items():
        lines.append(f"  <context name={quoteattr(context)}>")
        for ext in extensions:
            lines.append(f"    <extension name={quoteattr(ext.name)}>")
            lines.append(
                f"      <condition field={quoteattr(ext.field_name)} "
                f"expression={quoteattr(ext.expression)}>"
            )
            for app, data in ext.actions:
                data_attr = f" data={quoteattr(data)}" if data is not None else ""
                lines.append(f"        <action application={quoteattr(app)}{data_attr}/>")
            lines.append("      </condition>")
            lines.append("    </extension>")
        lines.append("  </context>")
    lines.append("</include>")
    return "\n".join(lines) + "\n"
