"""The audit's report: one Check per line, the AuditReport that holds them, its rendering and exit code.

Exit codes: 0 everything checked and consistent, 1 a mismatch (or the outbox did not drain),
2 the audit could not run (no servers), 3 no mismatch but some checks were skipped because
trading never paused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXAMPLES = 10


@dataclass
class Check:
    """One line of the report: how many things were checked, skipped, and what did not match."""

    name: str
    checked: int = 0
    skipped: int = 0
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""

    def fail(self, message: str) -> None:
        self.mismatches += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(message)


@dataclass
class AuditReport:
    """Every check of one audit, with the watermark it used."""

    watermark: int = 0
    drained: bool = True
    quiet: bool = True
    attempts: int = 0
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str) -> Check:
        found = Check(name)
        self.checks.append(found)
        return found

    @property
    def mismatches(self) -> int:
        return sum(c.mismatches for c in self.checks)

    @property
    def partial(self) -> bool:
        return any(c.note.startswith("skipped") for c in self.checks)

    @property
    def exit_code(self) -> int:
        if self.mismatches:
            return 1
        return 3 if self.partial else 0

    def failed(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name and c.mismatches), None)

    def render(self) -> str:
        lines = [
            f"ftl audit: watermark trade {self.watermark}, outbox "
            f"{'drained' if self.drained else 'NOT drained'}, snapshot "
            f"{'quiet' if self.quiet else 'taken while trading went on'} "
            f"(attempt {self.attempts}, {self.seconds:.2f} s)",
            "",
            f"{'check':<68}{'checked':>10}{'skipped':>10}{'mismatches':>12}",
        ]
        for c in self.checks:
            lines.append(f"{c.name:<68}{c.checked:>10}{c.skipped:>10}{c.mismatches:>12}")
            if c.note:
                lines.append(f"    {c.note}")
            lines.extend(f"    - {e}" for e in c.examples)
            if c.mismatches > len(c.examples):
                lines.append(f"    ... and {c.mismatches - len(c.examples)} more")
        lines.append("")
        if self.mismatches:
            lines.append(f"RESULT: FAIL, {self.mismatches} mismatch(es)")
        elif self.partial:
            lines.append("RESULT: PARTIAL, no mismatch, but trading never paused: some checks skipped")
        else:
            lines.append("RESULT: OK, Redis and PostgreSQL agree; money is conserved")
        return "\n".join(lines)
