"""FACS action unit strings of the datasets' sheets -> `ActionUnit`s (`Sample.aus`), by documented rules.

The sheets write a clip's action units (AUs) as one string of AUs joined by `+`. The forms found in the real
sheets (CASME II, SAMM; CAS(ME)^3, MMEW and 4DME use the same notation) and how each is read:

- `12`, `R14`, `L2`: AU number with an optional side prefix, `L`/`R` unilateral; no prefix is bilateral (side "").
- `12A`..`12E`: an intensity letter after the number (FACS A = trace .. E = maximum).
- `A12` (SAMM): asymmetric - on both sides, stronger on one (SAMM's key), so bilateral (side "").
- `T18`, `B18`, `T23` (SAMM; the key does not explain them): read as FACS's marks for a lip AU confined to the top
  or bottom lip: the AU itself, bilateral.
- `ref(7B)`, `ref(L10)` (SAMM): an AU written in `ref(...)`; the sheet does not define the mark, so the AU is kept as
  coded on the clip (as the public FGRMER reproduction, which takes every AU number of the string).
- `(R6 or R12)`, `L12 or L14`, `R14A or 17A or 24A` (SAMM): the coder could not tell which; every AU named is kept,
  so the clip counts for each (the FGRMER reproduction does the same; the raw string keeps the `or`).
- `12/14` ("/" = or, SAMM's key, between whole AUs): as `or`, every AU named is kept.
- `10A/B`, `4A/B` (SAMM, "/" = or): alternative intensities of one AU: the first written is kept.
- `A/L12` (SAMM): alternative sides of one AU: the first written is kept (asymmetric: bilateral).
- `?` as the whole string (CASME II, five clips): the AUs were not identified: not coded (None), which is not the
  same as coded with no AU. A `?` after an AU (SAMM's key: "the AU continues and its offset is unclear") keeps it.
- `soft focus` (SAMM 026_5_1): a remark on the gaze, not an AU: left out.
- `AU12`, `AU 12`: an `AU` before the number is allowed (other sheets' spelling); `12.0`: a number cell that a
  spreadsheet stored as a float.
- `0` alone: FACS's neutral face: coded, no AU (the empty tuple).

Anything else is refused with an `AUError` naming the string and the part not understood; the readers report it as
a problem of the clip and keep the clip with no AU coding.
"""

from __future__ import annotations

import re

from pamer.data.samples import ActionUnit, DatasetError

# the header spellings of the AU column in the sheets (matched ignoring case and spacing)
AU_COLUMNS = ("Action Units", "Action Unit", "AU", "AUs", "Action_Units")
NOTES = frozenset({"soft focus"})  # remarks written among the AUs, not AUs (SAMM 026_5_1)
NOT_IDENTIFIED = frozenset({"?"})  # the whole string: the coders could not identify the AUs

_REF = re.compile(r"^ref\s*\((?P<inner>[^()]*)\)$", re.IGNORECASE)
_PARENS = re.compile(r"^\((?P<inner>[^()]*)\)$")
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
# prefix (side or lip part), optional "AU", number, optional intensity; the number is the only required part
_AU = re.compile(r"^(?:AU\s*)?(?P<prefix>[LRATB])?\s*(?:AU\s*)?(?P<number>\d+)(?P<intensity>[A-E])?$", re.IGNORECASE)
_FLOAT = re.compile(r"^\d+\.0$")
SIDES = {"L": "L", "R": "R", "A": "", "T": "", "B": ""}  # A asymmetric, T/B top/bottom lip: bilateral AUs


class AUError(DatasetError):
    """An action unit string that cannot be read (the message names the string and the part not understood)."""


def _split_plus(text: str) -> list[str]:
    """`text` split at the `+` signs outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "+" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _alternatives(token: str, text: str) -> list[ActionUnit]:
    """The AUs of one token: `12/14` (alternative AUs: all kept, as for `or`) or one AU (`_one`)."""
    parts = [p.strip() for p in token.split("/")]
    if len(parts) > 1 and all(re.search(r"\d", p) for p in parts):
        return [_one(p, text) for p in parts]
    return [_one(token, text)]


def _one(token: str, text: str) -> ActionUnit:
    """One AU written as `[side]number[intensity]`, or with `/` alternatives of its side or intensity."""
    token = token.strip().removesuffix("?").strip()  # "?" after an AU: its offset is unclear, the AU is coded
    if "/" in token:
        parts = [p.strip() for p in token.split("/")]
        numbered = [i for i, p in enumerate(parts) if re.search(r"\d", p)]
        if len(numbered) != 1:
            raise AUError(f"action units {text!r}: cannot read {token!r} (expected e.g. 10A/B, A/L12 or 12/14)")
        k = numbered[0]
        base = _one(parts[k], text)
        before, after = parts[:k], parts[k + 1 :]
        if any(p.upper() not in SIDES for p in before) or any(not re.fullmatch(r"[A-Ea-e]", p) for p in after):
            raise AUError(f"action units {text!r}: cannot read {token!r} (expected e.g. 10A/B, A/L12 or 12/14)")
        # "/" = or: alternative readings of one AU; the first one written is kept
        side = SIDES[before[0].upper()] if before else base.side
        return ActionUnit(base.number, side, base.intensity)
    if _FLOAT.match(token):  # a number cell stored as a float by the spreadsheet: 12.0 is AU 12
        token = token[:-2]
    match = _AU.match(token)
    if match is None:
        raise AUError(f"action units {text!r}: cannot read {token!r} as an action unit (expected e.g. 12, L4, R14B)")
    prefix = (match["prefix"] or "").upper()
    return ActionUnit(int(match["number"]), SIDES.get(prefix, ""), (match["intensity"] or "").upper())


def _term(term: str, text: str) -> list[ActionUnit]:
    """The AUs of one `+`-separated term: an AU, `ref(AU)`, `(X or Y)`, `X or Y`, or a note (none)."""
    term = term.strip()
    if not term or " ".join(term.lower().split()) in NOTES:
        return []
    for pattern in (_REF, _PARENS):  # ref(7B): the AU is kept (undefined mark); (R6 or R12): the alternatives
        match = pattern.match(term)
        if match:
            return _term(match["inner"], text)
    # "X or Y": the coder could not tell which, so every AU named is kept
    return [unit for alternative in _OR.split(term) for unit in _alternatives(alternative, text)]


def parse_aus(text: str | None) -> tuple[ActionUnit, ...] | None:
    """The action units of one sheet cell, in the order written, each once; None when the cell codes none.

    Args:
        text: the cell as text (`4+L10`, `(R6 or R12)+R15`, `?`), or None for a blank cell.

    Returns:
        The AUs (an empty tuple for `0`, FACS's neutral face); None for a blank cell or `?` (not identified).

    Raises:
        AUError: a part that is not an AU (the message names the string and the part).
    """
    if text is None:
        return None
    text = str(text).strip()
    if not text or text in NOT_IDENTIFIED:
        return None
    if text == "0":  # FACS's neutral face: coded, and no AU
        return ()
    if text.count("(") != text.count(")"):
        raise AUError(f"action units {text!r}: unbalanced parentheses")
    units: list[ActionUnit] = []
    for term in _split_plus(text):
        units += _term(term, text)
    if not units:
        raise AUError(f"action units {text!r}: no action unit found (expected e.g. 4+L10)")
    return tuple(dict.fromkeys(units))


def parse_cell(text: str | None, where: str) -> tuple[tuple[ActionUnit, ...] | None, str | None]:
    """`parse_aus` of a sheet or csv cell for a reader: (the AUs, None), or (None, a problem detail naming `where`)
    when the cell cannot be read, so the clip is kept without AU coding and the problem reported."""
    try:
        return parse_aus(text), None
    except AUError as error:
        return None, f"{where}: {error}; the clip is kept without AU coding"
