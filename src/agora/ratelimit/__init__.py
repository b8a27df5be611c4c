"""Rate limits: a GCRA limiter on Redis (one atomic round trip) with an in-process fallback,
the pure-ASGI HTTP middleware that applies it, and the per-connection WebSocket limiter.

Kept free of imports here so ``agora.config`` can import ``agora.ratelimit.rates``.
"""
