import binascii
from functools import cache
from hmac import compare_digest
from typing import Any, NamedTuple, cast

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions

from irportal import roles

INVALID_TOKEN = _("Invalid token.")


class TokenAuthentication(KnoxTokenAuthentication):
    """Knox's hashed tokens, read with one prepared statement, and without knox's sweep of
    all the user's tokens on every request.

    Every API request authenticates, so what that costs is paid by all of them. Knox builds
    and compiles the same ORM query each time (about a fifth of the CPU a create takes);
    here the statement is written once, and on PostgreSQL the server prepares it. What is
    checked is knox's: the token's key prefix finds the candidates, the digest is compared
    in constant time, an expired token is refused (and deleted), so is an inactive user.

    Knox also deletes a user's expired tokens each time any of their tokens is used, which
    costs a query per request. Here a request checks only the token it carries; the
    periodic task `irportal.purge_expired_tokens` removes the rest.

    The same statement reads the user's roles, which every API view asks for: an API
    request does not go to the roles cache (a Redis round trip, and a tenth of the Python
    work of a create), and sees the roles as they are now.
    """

    def authenticate_credentials(self, token: bytes) -> tuple[AbstractBaseUser, Any]:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError as error:  # knox lets this through as a server error
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from error
        for auth_token in tokens_with_key(text[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(text)
            except (TypeError, binascii.Error) as error:
                raise exceptions.AuthenticationFailed(INVALID_TOKEN) from error
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)  # type: ignore[no-any-return]
        raise exceptions.AuthenticationFailed(INVALID_TOKEN)

    def _cleanup_token(self, auth_token: Any) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


def tokens_with_key(key: str) -> list[Any]:
    """The tokens whose key prefix is `key`, each with its user and the user's roles."""
    lookup = token_lookup()
    token_width = len(lookup.token_model._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(lookup.sql, [*roles.ALL, key])
        rows = cursor.fetchall()
    # A row for each role the user holds (one row if none): the token and user repeat.
    found: dict[Any, tuple[Any, list[str]]] = {}
    for row in rows:
        token_pk = row[lookup.token_pk_index]
        if token_pk not in found:
            auth_token = from_row(lookup.token_model, row[:token_width])
            auth_token.user = from_row(lookup.user_model, row[token_width:-1])
            found[token_pk] = (auth_token, [])
        if row[-1] is not None:
            found[token_pk][1].append(row[-1])
    for auth_token, role_names in found.values():
        roles.remember_roles(auth_token.user, role_names)
    return [auth_token for auth_token, _ in found.values()]


class TokenLookup(NamedTuple):
    token_model: type[Model]
    token_pk_index: int
    user_model: type[Model]
    # Takes the role names (`roles.ALL`), then the key prefix.
    sql: str


@cache
def token_lookup() -> TokenLookup:
    """The statement that reads tokens by key prefix: every column of the token, every
    column of its user, then one of the user's role names."""
    token_model = get_token_model()
    user_field = token_model._meta.get_field("user")
    user_model = user_field.related_model
    groups = user_model._meta.get_field("groups")
    membership = groups.remote_field.through
    group_model = groups.related_model
    quote = connection.ops.quote_name

    def columns(model: type[Model], alias: str) -> str:
        names = (cast(str, field.column) for field in model._meta.concrete_fields)
        return ", ".join(f"{alias}.{quote(name)}" for name in names)

    group_name = quote(cast(str, group_model._meta.get_field("name").column))
    role_names = ", ".join(["%s"] * len(roles.ALL))
    sql = (
        f"SELECT {columns(token_model, 'auth_token')}, {columns(user_model, 'owner')}, role.name"  # noqa: S608
        f" FROM {quote(token_model._meta.db_table)} auth_token"
        f" JOIN {quote(user_model._meta.db_table)} owner"
        f" ON owner.{quote(user_model._meta.pk.column)} = auth_token.{quote(user_field.column)}"
        f" LEFT JOIN (SELECT member.{quote(groups.m2m_column_name())} AS user_id,"
        f" role_group.{group_name} AS name"
        f" FROM {quote(membership._meta.db_table)} member"
        f" JOIN {quote(group_model._meta.db_table)} role_group"
        f" ON role_group.{quote(group_model._meta.pk.column)}"
        f" = member.{quote(groups.m2m_reverse_name())}"
        f" WHERE role_group.{group_name} IN ({role_names})) role"
        f" ON role.user_id = owner.{quote(user_model._meta.pk.column)}"
        f" WHERE auth_token.{quote(token_model._meta.get_field('token_key').column)} = %s"
    )
    token_pk_index = token_model._meta.concrete_fields.index(token_model._meta.pk)
    return TokenLookup(token_model, token_pk_index, user_model, sql)


def from_row(model: type[Model], values: tuple[Any, ...]) -> Any:
    """An instance of `model` from its concrete columns, as the ORM makes one: values
    converted from the database's types, and marked as loaded from the database."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.cached_col
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, [field.attname for field in fields], converted)


class TokenScheme(KnoxTokenScheme):
    """Describe the token in the OpenAPI schema as drf-spectacular does for knox's own."""

    target_class = "irportal.auth.TokenAuthentication"
