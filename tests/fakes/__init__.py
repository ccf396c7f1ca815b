"""Local HTTP servers that implement the parts of each ticket system's documented API the
connectors use, with the vendors' paths, methods, authentication and JSON shapes; they
refuse what the real system would refuse and record every write."""

from tests.fakes.jira import FakeJira
from tests.fakes.otobo import FakeOtobo
from tests.fakes.server import FakeServer, Reply, Request
from tests.fakes.zammad import FakeZammad

__all__ = ["FakeJira", "FakeOtobo", "FakeServer", "FakeZammad", "Reply", "Request"]
