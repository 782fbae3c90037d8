"""The typed error hierarchy. Every error rnnstream raises on purpose derives from RnnstreamError."""


class RnnstreamError(Exception):
    """Base class of rnnstream's own errors."""


class ConfigError(RnnstreamError):
    """A configuration is invalid. ``problems`` lists every ``(yaml_path, message)`` found."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<config>"):
        self.problems = list(problems)
        self.source = source
        lines = [f"{source}: {len(self.problems)} problem(s)"]
        lines += [f"  {path}: {msg}" for path, msg in self.problems]
        super().__init__("\n".join(lines))


class StateFormatError(RnnstreamError):
    """A state or checkpoint file is unreadable: bad magic, unknown version, checksum mismatch, truncation."""


class StateVersionError(StateFormatError):
    """A sound state file of another format version: written by another rnnstream build, not damaged."""


class InputRejected(RnnstreamError):
    """One event was refused (bad payload, missing field, non-finite value...). ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class BrokerError(RnnstreamError):
    """The embedded Kafka broker could not be fetched, started or reached."""
