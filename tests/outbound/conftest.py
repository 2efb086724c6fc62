"""Outbound fixtures: MockWX on loopback."""

from tests.fakes.mockwx import mockwx

__all__ = ["mockwx"]
