"""The registry's rules: names, digests, manifests, content negotiation. No I/O here."""
