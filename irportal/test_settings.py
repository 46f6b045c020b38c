"""Settings for the test suite: the normal ones, with a generated key and fast hashing."""

import os

os.environ.setdefault("DEBUG", "true")

from irportal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
