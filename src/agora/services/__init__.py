"""The three services. Each imports shared infrastructure, never another service."""
