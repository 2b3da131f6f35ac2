"""Several service workers on one machine: Redis, PostgreSQL, the workers and nginx (``assistant cluster``)."""
