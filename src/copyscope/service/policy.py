"""Decisions: allow, flag or block an item from its matches and the tenant's sets.

A match against a work in a protected set applies that set's action when the
score reaches the set's threshold. A match against a work in no set applies the
tenant's ``unlisted_action`` (flag by default: a registered work was found, a
person should look). The strongest action wins: block > flag > allow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from copyscope.service.store import ProtectedSet

RANK = {"allow": 0, "flag": 1, "block": 2}


@dataclass(frozen=True)
class Decision:
    decision: str
    policy: dict[str, Any]              # what was applied, for the audit log
    matches: list[dict[str, Any]]


def decide(matches: Sequence[dict[str, Any]], sets: dict[str, list[ProtectedSet]],
           unlisted_action: str, only_sets: Sequence[str] = ()) -> Decision:
    """``matches``: {work_id, score, …}; ``only_sets``: restrict to these set ids
    (a caller checking against one franchise), which also drops unlisted matches."""
    decision = "allow"
    out = []
    for m in matches:
        rules = [x for x in sets.get(m["work_id"], []) if not only_sets or x.id in only_sets]
        applied = [{"set_id": x.id, "set": x.name, "action": x.action, "threshold": x.threshold}
                   for x in rules if m["score"] >= x.threshold]
        if applied:
            action = max((a["action"] for a in applied), key=RANK.__getitem__)
        elif rules or only_sets:
            action = "allow"            # in a set, but below its threshold (or outside the sets asked for)
        else:
            action = unlisted_action
        out.append({**m, "action": action, "sets": applied})
        decision = max(decision, action, key=RANK.__getitem__)
    policy = {"unlisted_action": unlisted_action, "only_sets": sorted(only_sets),
              "sets": sorted({a["set_id"] for m in out for a in m["sets"]})}
    return Decision(decision, policy, out)
