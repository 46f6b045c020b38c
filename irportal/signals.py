"""Forget cached roles the moment group memberships change."""

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from irportal.roles import roles_cache_key


@receiver(m2m_changed, sender=User.groups.through)
def forget_members_roles(
    instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    if not reverse:  # user.groups.add(...): one user changed
        cache.delete(roles_cache_key(instance.pk))
    elif pk_set:  # group.user_set.add(...): these users changed
        cache.delete_many([roles_cache_key(pk) for pk in pk_set])
    else:  # group.user_set.clear(): whoever was in it
        cache.clear()


@receiver([post_save, post_delete], sender=Group)
def forget_all_roles(**kwargs: Any) -> None:
    # A renamed or deleted group changes the roles of everyone in it; it happens rarely.
    cache.clear()
