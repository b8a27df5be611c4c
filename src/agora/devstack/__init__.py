"""`agora up`: the whole system on one machine, with embedded PostgreSQL and Redis if needed."""
