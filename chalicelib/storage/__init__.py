"""Storage: DynamoDB through pynamodb models, S3 through one boto3 client per container."""
