"""Redis, in one place: the client (standalone or Sentinel, ``client``), the key namespace
(``keys``), every use and its policy without Redis (``uses``, ``policy``) and the access layer
that applies them (``access``). Import the submodules; this package imports nothing, so the
observability modules can use ``keys`` and ``policy`` without an import cycle."""
