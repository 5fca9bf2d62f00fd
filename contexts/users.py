"""The users context: user profiles, their commands at /users, the read models of the users'
events (profiles, the directory) and the read endpoints at /users."""

from contexts.registry import BoundedContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from projections.models.user_profiles import UserProfiles
from projections.models.users_directory import UsersDirectory
from read_api import user_endpoints
from write_api.users import router

USERS = BoundedContext(
    name="users",
    application=UsersService,
    aggregates=(UserProfile,),
    router=router,
    projections=(UserProfiles, UsersDirectory),
    read_router=user_endpoints.router,
)
