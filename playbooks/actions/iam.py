"""Response actions on IAM."""
