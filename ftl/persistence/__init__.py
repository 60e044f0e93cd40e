"""Redis and PostgreSQL: connections, embedded servers, migrations, Lua scripts."""
