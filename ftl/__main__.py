"""Allow ``python -m ftl``."""

from ftl.cli import main

raise SystemExit(main())
