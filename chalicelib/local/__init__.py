"""Local mode: the same Chalice app behind a small HTTP server, on moto or LocalStack."""
