"""Metadata validation with Great Expectations (stage data.validate)."""
from components.validation.report import ValidationFailed

__all__ = ["ValidationFailed"]
