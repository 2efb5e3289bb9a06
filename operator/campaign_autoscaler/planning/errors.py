"""The one error type of the planning layer: a spec problem that names its field."""

from __future__ import annotations


class SpecError(ValueError):
    """An invalid CampaignEvent spec; `field` is the offending field's path (`spec.targets[1].replicas`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str]]:
        return (type(self), (self.field, self.message))
