"""`runOnRequirements` against what the gateway is: a standalone server
announcing its MongoDB version, without authentication, not serverless."""

from __future__ import annotations

import re

# What the gateway is.
TOPOLOGY = "single"


def version_tuple(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def unmet(requirement: dict, server_version: tuple[int, ...]) -> str | None:
    """Why `requirement` is not met by the gateway, or None if it is."""
    if "minServerVersion" in requirement:
        if server_version < version_tuple(requirement["minServerVersion"]):
            return f"needs server >= {requirement['minServerVersion']}"
    if "maxServerVersion" in requirement:
        if server_version > version_tuple(requirement["maxServerVersion"]):
            return f"needs server <= {requirement['maxServerVersion']}"
    topologies = requirement.get("topologies")
    if topologies is not None and TOPOLOGY not in topologies:
        return f"needs topology {'/'.join(topologies)} (the gateway is a standalone server)"
    if requirement.get("serverless") == "require":
        return "needs a serverless deployment"
    if requirement.get("auth") is True:
        return "needs authentication"
    if requirement.get("csfle"):
        return "needs client-side field level encryption"
    if requirement.get("serverParameters"):
        return f"needs server parameters {requirement['serverParameters']}"
    return None


def requirements_unmet(requirements: list | None, server_version: tuple[int, ...]) -> str | None:
    """None if any entry is met (or there are none), else the first reason."""
    if not requirements:
        return None
    reasons = [unmet(r, server_version) for r in requirements]
    if any(reason is None for reason in reasons):
        return None
    return reasons[0]
