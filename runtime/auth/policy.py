"""What a principal may do: one rule for every service.

An operator may do everything. A service account may read or write a context when its scopes
name `<context>:read` or `<context>:write` (write does not imply read). A user may act only on
a resource whose owner they are; an endpoint with no owner to compare (registering a profile,
paying an order, the admin endpoints) is not for users.
"""

from enum import StrEnum

from runtime.auth.principal import Principal, Role


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


class Forbidden(Exception):
    """A valid token that may not do this: a 403."""


def scope(context: str, access: Access) -> str:
    return f"{context}:{access}"


def permits(principal: Principal, context: str, access: Access, owner: object = None) -> bool:
    """`owner`: the user the resource belongs to, or None when it belongs to no user."""
    if principal.has(Role.OPERATOR):
        return True
    if principal.has(Role.SERVICE) and scope(context, access) in principal.scopes:
        return True
    return principal.has(Role.USER) and owner is not None and principal.is_subject(owner)


def require(principal: Principal, context: str, access: Access, owner: object = None) -> None:
    """Raise `Forbidden` unless `principal` may `access` this resource of `context`."""
    if permits(principal, context, access, owner):
        return
    if principal.has(Role.USER) and owner is not None:
        raise Forbidden(f"the resource belongs to another user; {access} {context} refused")
    raise Forbidden(
        f"{access} {context} needs the operator role or the scope {scope(context, access)!r}"
    )


def require_operator(principal: Principal) -> None:
    if not principal.has(Role.OPERATOR):
        raise Forbidden("this endpoint is for operators")
