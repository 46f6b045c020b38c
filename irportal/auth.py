from typing import Any

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication


class TokenAuthentication(KnoxTokenAuthentication):
    """Knox's hashed tokens, without its sweep of all the user's tokens on every request.

    Knox deletes a user's expired tokens each time any of their tokens is used, which costs
    a query per request. Here a request checks only the token it carries; the periodic task
    `irportal.purge_expired_tokens` removes the rest.
    """

    def _cleanup_token(self, auth_token: Any) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class TokenScheme(KnoxTokenScheme):
    """Describe the token in the OpenAPI schema as drf-spectacular does for knox's own."""

    target_class = "irportal.auth.TokenAuthentication"
