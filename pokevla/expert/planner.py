"""From a BDDL goal to an ordered list of steps.

LIBERO goals are conjunctions of predicates: (On a b), (In a region), (Open x), (Close x),
(TurnOn x), (TurnOff x). Each predicate becomes one step. The order matters for the two-step tasks:
opening and switching on come first (a drawer must be open before something goes in; a knob is
easier to reach before a pot stands on the stove), moving objects next, closing last (a drawer or
a door is closed over what was put inside). Putting something `In` a drawer region first opens
that drawer; the step is skipped at run time when it is already open.
"""

from __future__ import annotations

from dataclasses import dataclass

_ORDER = {"open": 0, "turnon": 1, "turnoff": 1, "move": 2, "close": 3}


@dataclass(frozen=True)
class Step:
    kind: str  # open | close | turnon | turnoff | move
    obj: str  # the object moved, or the articulated thing acted on
    target: str | None = None  # move: the object or region site it goes to
    relation: str | None = None  # move: "on" or "in"


def plan(goal: list[list[str]], articulated_regions: set[str]) -> list[Step]:
    """Steps that make every predicate of `goal` true.

    `articulated_regions` are the region sites that move with a joint (drawer interiors).
    """
    steps: list[Step] = []
    for pred in goal:
        name, args = pred[0].lower(), pred[1:]
        if name in ("on", "in"):
            obj, target = args
            steps.append(Step("move", obj, target, name))
            if name == "in" and target in articulated_regions:
                steps.append(Step("open", target))
        elif name in ("open", "close", "turnon", "turnoff"):
            steps.append(Step(name, args[0]))
        else:
            raise ValueError(f"the expert has no skill for the goal predicate {pred}")
    unique = list(dict.fromkeys(steps))
    # an explicit Close of the same drawer wins over the implicit Open: it is opened, filled, closed
    return sorted(unique, key=lambda s: _ORDER[s.kind])
