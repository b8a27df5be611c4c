"""`make loadtest SCENARIO=...`: seed, start the system, run k6, report, check integrity."""
