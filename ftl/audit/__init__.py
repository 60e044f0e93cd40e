"""``ftl audit``: reconcile Redis with PostgreSQL, check money is conserved and every trade balances.

Modules: :mod:`~ftl.audit.run` (the entry point; how it copes with the flusher's lag),
:mod:`~ftl.audit.backlog` (waiting for the flusher), :mod:`~ftl.audit.redis_snapshot` and
:mod:`~ftl.audit.pg_snapshot` (what is read), :mod:`~ftl.audit.checks` (what is compared),
:mod:`~ftl.audit.report` (the report and exit codes), :mod:`~ftl.audit.servers` (finding the
embedded servers of a running ``ftl dev``).
"""

from ftl.audit.report import AuditReport, Check
from ftl.audit.run import audit
from ftl.audit.servers import embedded_urls

__all__ = ["AuditReport", "Check", "audit", "embedded_urls"]
