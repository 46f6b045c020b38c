"""Response actions on EC2."""
