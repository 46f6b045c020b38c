"""Response actions on S3."""
