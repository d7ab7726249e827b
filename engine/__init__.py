"""IngestionAgent: Yahoo quotes -> shared-memory ring -> NATS JetStream, PostgreSQL and Redis.

The public surface is small on purpose; everything else is internal to the engine.
"""

from engine.errors import IngestionError
from engine.quote import Quote

__all__ = ["IngestionError", "Quote", "__version__"]

__version__ = "0.1.0"
