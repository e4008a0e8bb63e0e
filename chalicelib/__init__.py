"""Stratus: a serverless OCI registry (Chalice on API Gateway + Lambda, DynamoDB, S3)."""
