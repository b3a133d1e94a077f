"""What a scenario measures: figures, each with its floor and goal where it has one, printed as they come."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.floor else self.value / self.floor


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print(
            f"  {figure.name}: {figure.value:,.2f} {figure.unit}"
            + (f" (floor {figure.floor:,.2f}, ratio {figure.ratio:.2f})" if figure.floor else "")
            + (f"  goal {figure.goal}: {'met' if figure.met else 'NOT met'}" if figure.goal else ""),
            flush=True,
        )
