"""The words a result row uses to say which protocol produced it (shared by every task)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from probes.results import MODIFIED_PROTOCOL, STANDARD_PROTOCOL


@dataclass(frozen=True)
class ProtocolWords:
    """A row's `protocol` (one word) and `protocol_notes` (every departure and every fact worth saying)."""

    protocol: str
    notes: str

    def as_row(self) -> dict[str, str]:
        """The two result-row columns."""
        return {"protocol": self.protocol, "protocol_notes": self.notes}


def protocol_words(changes: Sequence[str], facts: Sequence[str] = (), label: Optional[str] = None,
                   word: Optional[str] = None) -> ProtocolWords:
    """`published` when nothing changed, else `modified` (or `word`, e.g. `cached`, `lr-grid`).

    `changes` are departures from the published recipe, `facts` what a reader should know anyway (which
    recipe, held-out split ...). A `label` (e.g. `demo`) replaces the word and says what it would have been.
    """
    protocol = word or (MODIFIED_PROTOCOL if changes else STANDARD_PROTOCOL)
    notes = list(facts) + list(changes)
    if label:
        notes.insert(0, f"{label} run ({protocol} recipe otherwise)")
        protocol = label
    return ProtocolWords(protocol, "; ".join(notes))
