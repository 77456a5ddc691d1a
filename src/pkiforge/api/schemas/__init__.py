"""API schemas (pydantic): what goes over the wire, apart from domain values and rows."""
