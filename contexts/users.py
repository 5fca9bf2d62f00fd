"""The users context: user profiles, their commands at /users."""

from contexts.registry import BoundedContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from write_api.users import router

USERS = BoundedContext(
    name="users", application=UsersService, aggregates=(UserProfile,), router=router
)
