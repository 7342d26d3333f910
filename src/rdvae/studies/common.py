"""What every study shares, written once: the scale check, the claims table ("claim | paper | here |
holds?"), markdown tables and CSV rows.

A claim is a statement of the paper checked on a study's runs, recorded as a dict

    {"claim": what is claimed, "paper": what the paper shows, "here": what the runs show,
     "holds": True | False | None}

where None means the runs cannot tell (a run is missing, or the grid lacks the runs the claim needs),
never that it holds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from rdvae.registry import STUDY_SCALES

VERDICTS = {True: "yes", False: "**no**", None: "cannot tell"}


def check_scale(scale: str, scales: Sequence[str] = STUDY_SCALES) -> str:
    """`scale`, or a ValueError naming the scales there are."""
    if scale not in scales:
        raise ValueError(f"scale must be one of {', '.join(scales)}, got {scale!r}")
    return scale


# --- claims ------------------------------------------------------------------------------------

def claim(text: str, paper: str, here: str, holds: bool | None) -> dict:
    """One checked claim: the paper's statement, what the paper shows, what the runs show, and whether
    the claim holds there (None: the runs cannot tell)."""
    return {"claim": text, "paper": paper, "here": here, "holds": holds}


def verdict(holds: bool | None) -> str:
    """How a claims table says whether a claim holds: yes, **no** or cannot tell."""
    return VERDICTS[holds]


def claims_table(claims: Iterable[dict], paper: str = "paper") -> str:
    """The claims as a markdown table "claim | paper | here | holds?"; `paper` heads the paper's column
    (e.g. "paper (CelebA)" where the runs are on other data)."""
    return markdown_table(["claim", paper, "here", "holds?"],
                          [[c["claim"], c["paper"], c["here"], verdict(c["holds"])] for c in claims])


# --- tables ------------------------------------------------------------------------------------

def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table: the header, the separator, then one line per row of cells (written as given)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def records_table(records: Iterable[dict], columns: Sequence[str], number: str = "{:.4g}") -> str:
    """A markdown table of dicts, one column per key: a float written with `number`, a missing value
    (None or absent) as "-", anything else as str()."""
    def cell(value) -> str:
        return "-" if value is None else number.format(value) if isinstance(value, float) else str(value)

    return markdown_table(columns, [[cell(r.get(c)) for c in columns] for r in records])


# --- rows on disk ------------------------------------------------------------------------------

def write_csv(path: str | Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """The rows' `columns` as CSV (keys a row lacks left empty, others ignored), written whole under a
    temporary name, then moved into place."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in columns})
    tmp.replace(path)
