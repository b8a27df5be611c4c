"""Redis: the client factory (standalone or Sentinel) shared by every service."""
